import type { Duplex } from "node:stream";
import type { Identity } from "../../../proto/gen/vigil/v1/relay.js";
import type { Connection } from "../../../lib/config/schema.js";
import type { Logger } from "../../../lib/log.js";
import type { SessionPolicy } from "../session-policy.js";

/** Everything an engine learns about one session. */
export interface SessionContext {
  sessionId: string;
  connection: Connection;
  identity: Identity;
  /** The session's policy; read `policy.current` for each command (the hub may replace it). */
  policy: SessionPolicy;
  clientAddress: string;
  log: Logger;
}

/** A session whose target side is ready; `serve` runs it over the tunnel until either side ends. */
export interface EngineSession {
  serve(client: Duplex): Promise<void>;
}

/**
 * One protocol engine per connection type. `open` runs before the relay accepts the tunnel, so a
 * target that cannot be reached becomes a TunnelFailed with a clear message instead of a dead session.
 */
export interface ProtocolEngine {
  open(ctx: SessionContext): Promise<EngineSession>;
}
