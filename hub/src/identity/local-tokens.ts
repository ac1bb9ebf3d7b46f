import { randomUUID } from "node:crypto";
import { jwtVerify, SignJWT } from "jose";
import type { Ed25519Key } from "../../../lib/keys.js";
import type { Identity } from "./identity.js";
import { CLOCK_TOLERANCE_SECONDS, refused, tokenErrorReason } from "./token-errors.js";
import type { TokenRecord, TokenStore } from "./token-store.js";

export { tokenErrorReason } from "./token-errors.js";

/** Longest lifetime a local token can have; an unknown token id is denied for that long. */
export const MAX_TTL_SECONDS = 365 * 86400;

export interface IssuedToken {
  token: string;
  id: string;
  expiresAt: Date;
}

/**
 * Hub-signed EdDSA JWTs for service accounts and agents, and the admin token of `vigil up`.
 * With a store, every issued token is recorded (without the token) and revocations are honoured;
 * without one (offline signing in the CLI) tokens are only signed.
 */
export class LocalTokens {
  constructor(
    private readonly key: Ed25519Key,
    readonly issuer: string,
    readonly audience: string,
    private readonly store?: TokenStore,
  ) {}

  async issue(subject: string, groups: string[], ttlSeconds: number, issuedBy?: string): Promise<IssuedToken> {
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
    const expiresAt = new Date((now + ttlSeconds) * 1000);
    await this.store?.record({
      id,
      kind: "token",
      subject,
      groups,
      issuedAt: new Date(now * 1000).toISOString(),
      expiresAt: expiresAt.toISOString(),
      issuedBy,
    });
    return { token, id, expiresAt };
  }

  /** Tokens issued through this hub (not those signed offline), newest last. */
  list(): TokenRecord[] {
    return (this.store?.list() ?? []).filter((r) => r.kind === "token");
  }

  /** Revoke by id. An id the store never saw (a token signed offline) is denied for the longest token lifetime. */
  async revoke(id: string, by: string): Promise<TokenRecord> {
    if (!this.store) throw new Error("this hub keeps no token records");
    const until = new Date(Date.now() + (MAX_TTL_SECONDS + 86400) * 1000);
    return this.store.revoke(id, by, { kind: "token", subject: "", groups: [], expiresAt: until.toISOString() });
  }

  async verify(token: string): Promise<Identity> {
    let identity: Identity;
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, {
        issuer: this.issuer,
        audience: this.audience,
        algorithms: ["EdDSA"],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["sub", "exp", "jti"],
      });
      const groups = Array.isArray(payload.groups) ? payload.groups.filter((g) => typeof g === "string") : [];
      identity = {
        subject: payload.sub!,
        groups,
        issuer: this.issuer,
        tokenId: payload.jti!,
        expiresAt: new Date(payload.exp! * 1000),
      };
    } catch (err) {
      throw refused(tokenErrorReason(err), err);
    }
    if (this.store?.isRevoked(identity.tokenId!)) throw refused(`token ${identity.tokenId} has been revoked`);
    return identity;
  }
}
