import { randomUUID } from "node:crypto";
import { errors, jwtVerify, SignJWT } from "jose";
import { VigilError } from "../../../lib/errors.js";
import type { Ed25519Key } from "../../../lib/keys.js";
import type { Identity } from "./identity.js";

export interface IssuedToken {
  token: string;
  id: string;
  expiresAt: Date;
}

/** Hub-signed EdDSA JWTs for service accounts and agents, and the admin token of `vigil up`. */
export class LocalTokens {
  constructor(
    private readonly key: Ed25519Key,
    readonly issuer: string,
    readonly audience: string,
  ) {}

  async issue(subject: string, groups: string[], ttlSeconds: number): Promise<IssuedToken> {
    const id = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ groups })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
      .setSubject(subject)
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSeconds)
      .setJti(id)
      .sign(this.key.privateKey);
    return { token, id, expiresAt: new Date((now + ttlSeconds) * 1000) };
  }

  async verify(token: string): Promise<Identity> {
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: ["EdDSA"],
        clockTolerance: 30,
        requiredClaims: ["sub", "exp", "jti"],
      });
      const groups = Array.isArray(payload.groups) ? payload.groups.filter((g) => typeof g === "string") : [];
      return {
        subject: payload.sub!,
        groups,
        issuer: this.issuer,
        tokenId: payload.jti!,
        expiresAt: new Date(payload.exp! * 1000),
      };
    } catch (err) {
      throw new VigilError("bad_token", tokenErrorReason(err), { cause: err });
    }
  }
}

/** A precise reason for the caller; never the token itself. */
export function tokenErrorReason(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "token expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim "${err.claim}" is not valid: ${err.reason}`;
  if (err instanceof errors.JOSEAlgNotAllowed) return "token algorithm is not allowed";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "token signature does not verify";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "token is malformed";
  if (err instanceof errors.JOSENotSupported) return "token uses an unsupported algorithm";
  return "token is not valid";
}
