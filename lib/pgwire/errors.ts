/**
 * Malformed or oversize PostgreSQL wire input. `sqlstate` is what the peer should see in the
 * ErrorResponse we send before closing: 08P01 protocol_violation for a bad frame, 54000
 * program_limit_exceeded for a length over a limit, 0A000 feature_not_supported for a protocol
 * version we do not speak.
 */
export class PgProtocolError extends Error {
  override readonly name = "PgProtocolError";
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}

export const PROTOCOL_VIOLATION = "08P01";
export const PROGRAM_LIMIT_EXCEEDED = "54000";
export const FEATURE_NOT_SUPPORTED = "0A000";
