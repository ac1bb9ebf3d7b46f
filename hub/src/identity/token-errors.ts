import { errors } from "jose";
import { VigilError } from "../../../lib/errors.js";

/** Algorithms a token may be signed with: asymmetric only (no `none`, no shared-secret HS*). */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** Clock skew tolerated on exp/nbf/iat between the hub and whoever issued the token. */
export const CLOCK_TOLERANCE_SECONDS = 30;

export function refused(reason: string, cause?: unknown): VigilError {
  return new VigilError("bad_token", reason, cause === undefined ? undefined : { cause });
}

/** A precise reason for the caller; never the token itself. */
export function tokenErrorReason(err: unknown): string {
  if (err instanceof VigilError) return err.message;
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim "${err.claim}" is not valid: ${err.reason}`;
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not allowed";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature does not verify";
  if (err instanceof errors.JWKSNoMatchingKey) return "no signing key of the issuer matches the token (unknown kid)";
  if (err instanceof errors.JWKSTimeout) return "the issuer's signing keys could not be fetched in time";
  if (err instanceof errors.JWKSInvalid) return "the issuer's signing keys (JWKS) are malformed";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "token is malformed";
  if (err instanceof errors.JOSENotSupported) return "token uses an unsupported algorithm";
  if (err instanceof errors.JOSEError) return `token is not valid: ${err.message}`;
  // Anything else came from fetching the issuer's keys, not from the token.
  if (err instanceof Error) return `the issuer's signing keys could not be fetched (${err.message})`;
  return "token is not valid";
}
