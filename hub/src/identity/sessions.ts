import { randomUUID } from "node:crypto";
import { jwtVerify, SignJWT, type JWTPayload } from "jose";
import type { Ed25519Key } from "../../../lib/keys.js";
import type { Identity } from "./identity.js";
import { CLOCK_TOLERANCE_SECONDS, refused, tokenErrorReason } from "./token-errors.js";
import type { TokenStore } from "./token-store.js";

// Distinct audiences and types: a session cookie is never accepted as a Bearer token, nor login state as a session.
const SESSION = { aud: "vigil-web-session", typ: "vigil-session+jwt" };
const LOGIN_STATE = { aud: "vigil-web-login", typ: "vigil-login+jwt" };

/** What the hub remembers between sending a browser to the IdP and its return to the callback. */
export interface LoginState {
  issuer: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
}

/** Hub-signed short JWTs for the web: the session cookie, and the login round trip's state cookie. */
export class SessionTokens {
  constructor(
    private readonly key: Ed25519Key,
    private readonly issuer: string,
    private readonly store: TokenStore,
  ) {}

  async issue(identity: Identity, ttlSeconds: number): Promise<{ token: string; id: string; expiresAt: Date }> {
    const id = randomUUID();
    const token = await this.sign({ groups: identity.groups, idp: identity.issuer }, SESSION, ttlSeconds, {
      sub: identity.subject,
      jti: id,
    });
    return { token, id, expiresAt: new Date(Date.now() + ttlSeconds * 1000) };
  }

  async verify(token: string): Promise<Identity> {
    const payload = await this.open(token, SESSION, ["sub", "exp", "jti", "idp"]);
    if (this.store.isRevoked(payload.jti!)) throw refused("session has ended (logged out)");
    return {
      subject: payload.sub!,
      groups: Array.isArray(payload.groups) ? payload.groups.filter((g) => typeof g === "string") : [],
      issuer: String(payload.idp),
      tokenId: payload.jti!,
      expiresAt: new Date(payload.exp! * 1000),
    };
  }

  /** Record a session as revoked, so its cookie stops working at every hub even if a copy survives. */
  async end(identity: Identity): Promise<void> {
    await this.store.revoke(identity.tokenId!, identity.subject, {
      kind: "session",
      subject: identity.subject,
      groups: identity.groups,
      expiresAt: (identity.expiresAt ?? new Date()).toISOString(),
    });
  }

  loginState(state: LoginState, ttlSeconds: number): Promise<string> {
    return this.sign({ ...state }, LOGIN_STATE, ttlSeconds);
  }

  async openLoginState(token: string): Promise<LoginState> {
    const p = await this.open(token, LOGIN_STATE, ["issuer", "state", "nonce", "codeVerifier", "returnTo"]);
    return {
      issuer: String(p.issuer),
      state: String(p.state),
      nonce: String(p.nonce),
      codeVerifier: String(p.codeVerifier),
      returnTo: String(p.returnTo),
    };
  }

  private sign(
    claims: JWTPayload,
    kind: { aud: string; typ: string },
    ttlSeconds: number,
    extra: { sub?: string; jti?: string } = {},
  ): Promise<string> {
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", typ: kind.typ })
      .setIssuer(this.issuer)
      .setAudience(kind.aud)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds);
    if (extra.sub) jwt.setSubject(extra.sub);
    if (extra.jti) jwt.setJti(extra.jti);
    return jwt.sign(this.key.privateKey);
  }

  private async open(token: string, kind: { aud: string; typ: string }, requiredClaims: string[]): Promise<JWTPayload> {
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, {
        issuer: this.issuer,
        audience: kind.aud,
        typ: kind.typ,
        algorithms: ["EdDSA"],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims,
      });
      return payload;
    } catch (err) {
      throw refused(tokenErrorReason(err).replace(/^token/, "session"), err);
    }
  }
}
