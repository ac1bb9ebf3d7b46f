import type { AddressInfo } from "node:net";

export interface HostPort {
  host: string;
  port: number;
}

/** Parse "host:port" or "[v6]:port". */
export function parseHostPort(value: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  if (!m) throw new Error(`expected host:port, got "${value}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port out of range in "${value}"`);
  return { host: (m[1] ?? m[2])!, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export function fromAddressInfo(info: AddressInfo | string | null): HostPort {
  if (!info || typeof info === "string") throw new Error("server is not listening on TCP");
  return { host: info.address, port: info.port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "";
}

/** An address to dial for a listener: a wildcard bind ("0.0.0.0", "[::]") is reached over loopback. */
export function dialableAddress(listen: string): string {
  const { host, port } = parseHostPort(listen);
  if (!isWildcard(host)) return listen;
  return formatHostPort({ host: host === "::" ? "::1" : "127.0.0.1", port });
}
