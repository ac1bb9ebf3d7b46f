import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { formatHostPort, parseHostPort } from "../../lib/address.js";

/** One address to dial, and the name its certificate is checked against. */
export interface HubAddress {
  address: string;
  serverName: string;
}

/**
 * Every address of every configured hub entry. A name with several addresses (a headless Service,
 * round-robin DNS) becomes one link per address, so the relay reaches every hub replica; a hub it
 * reaches twice is noticed by its hub id and kept once.
 */
export async function resolveHubs(entries: readonly string[]): Promise<HubAddress[]> {
  const out = new Map<string, HubAddress>();
  for (const entry of entries) {
    const { host, port } = parseHostPort(entry);
    if (isIP(host)) {
      out.set(entry, { address: entry, serverName: host });
      continue;
    }
    try {
      for (const a of await lookup(host, { all: true })) {
        const address = formatHostPort({ host: a.address, port });
        out.set(address, { address, serverName: host });
      }
    } catch {
      // An unresolvable name is retried at the next refresh; until then it has no address.
    }
  }
  return [...out.values()];
}
