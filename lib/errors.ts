/** Every failure Vigil reports to a caller has a stable code; protocols map it to their native error form. */
export type VigilErrorCode =
  | "bad_token"
  | "forbidden"
  | "unknown_connection"
  | "relay_unavailable"
  | "relay_lost"
  | "relay_draining"
  | "target_unreachable"
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
  constructor(
    readonly code: VigilErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
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
  "tunnel_timeout",
  "hub_unavailable",
  "client_gone",
  "protocol_error",
  "bad_request",
  "not_found",
  "conflict",
  "internal",
] as const satisfies readonly VigilErrorCode[];
