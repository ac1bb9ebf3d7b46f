/** Every failure Vigil reports to a caller has a stable code; protocols map it to their native error form. */
export type VigilErrorCode =
  | "bad_token"
  | "forbidden"
  | "unknown_connection"
  | "relay_unavailable"
  | "relay_lost"
  | "relay_draining"
  | "target_unreachable"
  | "target_refused"
  | "recording_unavailable"
  | "tunnel_timeout"
  | "hub_unavailable"
  | "client_gone"
  | "protocol_error"
  | "bad_request"
  | "not_found"
  | "conflict"
  | "internal";

export class VigilError extends Error {
  override readonly name = "VigilError";
  /** The target's own error code when the target refused (SQLSTATE for postgres). */
  readonly nativeCode?: string;
  constructor(
    readonly code: VigilErrorCode,
    message: string,
    options?: { cause?: unknown; nativeCode?: string },
  ) {
    super(message, options);
    if (options?.nativeCode) this.nativeCode = options.nativeCode;
  }
}

/** Narrow an unknown code string (e.g. from the wire) to a known one, or "internal". */
export function toErrorCode(code: string): VigilErrorCode {
  return (KNOWN_CODES as readonly string[]).includes(code) ? (code as VigilErrorCode) : "internal";
}

const KNOWN_CODES = [
  "bad_token",
  "forbidden",
  "unknown_connection",
  "relay_unavailable",
  "relay_lost",
  "relay_draining",
  "target_unreachable",
  "target_refused",
  "recording_unavailable",
  "tunnel_timeout",
  "hub_unavailable",
  "client_gone",
  "protocol_error",
  "bad_request",
  "not_found",
  "conflict",
  "internal",
] as const satisfies readonly VigilErrorCode[];
