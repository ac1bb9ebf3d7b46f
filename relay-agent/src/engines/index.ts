import type { ConnectionType } from "../../../lib/config/schema.js";
import type { ProtocolEngine } from "./engine.js";
import { postgresEngine } from "./postgres/engine.js";
import { sshEngine } from "./ssh/engine.js";
import { tcpEngine } from "./tcp/engine.js";

/**
 * The engines this relay ships, by connection type. A type without an engine here is refused at
 * relay start: forwarding it as raw bytes would skip its policy.
 */
export const engines = {
  tcp: tcpEngine,
  postgres: postgresEngine,
  ssh: sshEngine,
  http: undefined,
  kubernetes: undefined,
} satisfies Record<ConnectionType, ProtocolEngine | undefined>;

export function engineFor(type: ConnectionType): ProtocolEngine | undefined {
  return engines[type];
}

export const SUPPORTED_TYPES = (Object.keys(engines) as ConnectionType[]).filter((t) => engines[t]);
