import { randomUUID } from "node:crypto";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import type { Identity } from "../identity/identity.js";
import type { RelayRecord, RelayRegistry } from "../relays/registry.js";
import type { TunnelBroker, TunnelCall } from "./broker.js";

export interface OpenedSession {
  id: string;
  relay: RelayRecord;
  tunnel: TunnelCall;
  /** Call once when the session has ended, to release its slot on the relay. */
  release(): void;
}

// Failures that say "this relay", not "this connection": worth one more try elsewhere.
const RETRYABLE = new Set(["relay_lost", "tunnel_timeout", "relay_draining", "relay_unavailable"]);

/** Opens sessions on relays for every front door: route, ask the relay, fail over once. */
export class SessionRouter {
  constructor(
    private readonly registry: RelayRegistry,
    private readonly broker: TunnelBroker,
    private readonly log: Logger,
  ) {}

  async open(identity: Identity, connection: string, clientAddress: string): Promise<OpenedSession> {
    const id = randomUUID();
    const tried = new Set<string>();
    let lastError: VigilError | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      let relay: RelayRecord;
      try {
        relay = this.registry.route(connection, tried);
      } catch (err) {
        throw lastError ?? err;
      }
      tried.add(relay.id);
      relay.activeSessions++;
      try {
        const tunnel = await this.broker.open(relay, {
          sessionId: id,
          connection,
          identity: { subject: identity.subject, groups: identity.groups, issuer: identity.issuer },
          policy: Buffer.alloc(0),
          clientAddress,
        });
        let released = false;
        return {
          id,
          relay,
          tunnel,
          release: () => {
            if (!released) relay.activeSessions--;
            released = true;
          },
        };
      } catch (err) {
        relay.activeSessions--;
        if (!(err instanceof VigilError) || !RETRYABLE.has(err.code)) throw err;
        this.log.warn({ session: id, relay: relay.id, code: err.code }, "relay failed to open session; trying another");
        lastError = err;
      }
    }
    throw lastError!;
  }
}
