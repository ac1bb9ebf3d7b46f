import type { Duplex } from "node:stream";
import type { Identity } from "../../../proto/gen/vigil/v1/relay.js";
import type { Connection } from "../../../lib/config/schema.js";
import type { Logger } from "../../../lib/log.js";
import type { SessionRecording } from "../recording/recorder.js";
import type { SessionPolicy } from "../session-policy.js";

/** Everything an engine learns about one session. */
export interface SessionContext {
  sessionId: string;
  connection: Connection;
  identity: Identity;
  /** The session's policy; read `policy.current` for each command (the hub may replace it). */
  policy: SessionPolicy;
  clientAddress: string;
  /** Protocol parameters the client sent through the front door (postgres: database, application_name…). */
  params: Readonly<Record<string, string>>;
  /** The relay's SSH host key (OpenSSH private key), for engines that speak SSH to the client. */
  sshHostKey?: string;
  /**
   * Hold a command for human review: resolves with the outcome (anything but "approved" means the
   * command must not run). `onPending` gets the approval id as soon as the hub has recorded it.
   */
  /** The session's recording: engines record commands, decisions and results here. */
  recording: SessionRecording;
  requestApproval(
    req: { rule: string; command: string },
    onPending: (approvalId: string) => void,
  ): Promise<ApprovalOutcome>;
  log: Logger;
}

export interface ApprovalOutcome {
  status: "approved" | "denied" | "expired" | "error";
  approvalId: string;
  decisions: { by: string; verdict: string; reason: string; at: string }[];
  /** With "error": why the hub could not take the request. */
  message: string;
}

/** A session whose target side is ready; `serve` runs it over the tunnel until either side ends. */
export interface EngineSession {
  serve(client: Duplex): Promise<void>;
  /** Cancel what the target runs right now, keeping the session (postgres CancelRequest). */
  cancel?(): void;
}

/**
 * One protocol engine per connection type. `open` runs before the relay accepts the tunnel, so a
 * target that cannot be reached becomes a TunnelFailed with a clear message instead of a dead session.
 */
export interface ProtocolEngine {
  /** Check a connection's engine-specific settings (credentials) at relay start; throws a config error. */
  check?(connection: Connection): void;
  open(ctx: SessionContext): Promise<EngineSession>;
}
