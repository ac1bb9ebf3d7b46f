import { decodeJwt, decodeProtectedHeader } from "jose";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import type { Identity } from "./identity.js";
import type { Introspector } from "./introspection.js";
import type { LocalTokens } from "./local-tokens.js";
import type { OidcVerifier } from "./oidc-verifier.js";
import type { SessionTokens } from "./sessions.js";
import { ASYMMETRIC_ALGORITHMS, refused } from "./token-errors.js";

/** Where a credential was presented; named in every audit event. */
export type FrontDoor = "api" | "connect" | "postgres" | "ssh" | "http";

export interface AuthenticatorOptions {
  /** Verifiers of the configured OIDC issuers, by issuer. */
  oidc?: ReadonlyMap<string, OidcVerifier>;
  /** Issuers to ask about opaque tokens, in order. */
  introspectors?: readonly Introspector[];
  sessions?: SessionTokens;
  log?: Logger;
}

/** What an unverified token claims to be: for choosing a verifier and for the audit trail only. */
interface Claimed {
  jwt: boolean;
  alg?: string;
  issuer?: string;
  subject?: string;
  tokenId?: string;
}

/**
 * The one verification path for every front door. The verifier is chosen by the token's `iss`: the hub's
 * own issuer → local tokens; a configured OIDC issuer → its JWKS; an opaque token → introspection.
 * Every outcome is audited here: refusals at warn, successes at debug. Tokens are never logged.
 */
export class Authenticator {
  constructor(
    private readonly local: LocalTokens,
    private readonly adminGroups: readonly string[],
    private readonly options: AuthenticatorOptions = {},
    readonly via: FrontDoor = "api",
  ) {}

  /** The same authenticator, auditing under another front door's name. */
  forFrontDoor(via: FrontDoor): Authenticator {
    return new Authenticator(this.local, this.adminGroups, this.options, via);
  }

  async verify(token: string | undefined): Promise<Identity> {
    const claimed = token ? peek(token) : { jwt: false };
    return this.audited(claimed, () =>
      token ? this.dispatch(token, claimed) : Promise.reject(refused("no token presented")),
    );
  }

  /** Parse an `Authorization: Bearer …` value and verify it. */
  async verifyBearer(header: string | undefined): Promise<Identity> {
    if (!header)
      return this.audited({ jwt: false }, () => Promise.reject(refused("missing Authorization: Bearer token")));
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m)
      return this.audited({ jwt: false }, () =>
        Promise.reject(refused("Authorization header must be: Bearer <token>")),
      );
    return this.verify(m[1]);
  }

  /** A web session cookie set by the login callback. */
  async verifySession(cookie: string): Promise<Identity> {
    const claimed = peek(cookie);
    return this.audited(claimed, () => {
      if (!this.options.sessions) return Promise.reject(refused("web sessions are not enabled"));
      return this.options.sessions.verify(cookie);
    });
  }

  isAdmin(identity: Identity): boolean {
    return identity.groups.some((g) => this.adminGroups.includes(g));
  }

  private async dispatch(token: string, claimed: Claimed): Promise<Identity> {
    if (!claimed.jwt) return this.introspect(token);
    if (!claimed.alg || !ASYMMETRIC_ALGORITHMS.includes(claimed.alg))
      throw refused(`token algorithm ${JSON.stringify(claimed.alg ?? null)} is not allowed`);
    if (claimed.issuer === undefined) throw refused("token has no issuer (iss)");
    if (claimed.issuer === this.local.issuer) return this.local.verify(token);
    const verifier = this.options.oidc?.get(claimed.issuer);
    if (!verifier) throw refused(`token issuer ${JSON.stringify(claimed.issuer)} is not trusted`);
    return verifier.verify(token);
  }

  /** Opaque tokens: the first configured issuer that knows the token as active decides. */
  private async introspect(token: string): Promise<Identity> {
    const introspectors = this.options.introspectors ?? [];
    if (introspectors.length === 0) throw refused("token is malformed");
    const unavailable: string[] = [];
    for (const introspector of introspectors) {
      const result = await introspector.introspect(token);
      if (result.kind === "active") return result.identity;
      if (result.kind === "unavailable") unavailable.push(result.reason);
    }
    if (unavailable.length > 0)
      throw refused(`token is not active at any reachable issuer (${unavailable.join("; ")})`);
    throw refused("token is not active (introspection)");
  }

  private async audited(claimed: Claimed, verify: () => Promise<Identity>): Promise<Identity> {
    try {
      const identity = await verify();
      this.options.log?.debug(
        {
          audit: "auth.ok",
          issuer: identity.issuer,
          subject: identity.subject,
          tokenId: identity.tokenId,
          via: this.via,
        },
        "authenticated",
      );
      return identity;
    } catch (err) {
      const e = err instanceof VigilError ? err : refused("token could not be verified", err);
      if (!(err instanceof VigilError)) this.options.log?.error({ err }, "token verification failed unexpectedly");
      this.options.log?.warn(
        {
          audit: "auth.refused",
          reason: e.message,
          issuer: claimed.issuer,
          subject: claimed.subject,
          tokenId: claimed.tokenId,
          via: this.via,
        },
        "authentication refused",
      );
      throw e;
    }
  }
}

/** Decode without verifying; attacker-controlled values are clipped before they reach a log line. */
function peek(token: string): Claimed {
  try {
    const header = decodeProtectedHeader(token);
    const payload = decodeJwt(token);
    return {
      jwt: true,
      alg: typeof header.alg === "string" ? header.alg : undefined,
      issuer: clip(payload.iss),
      subject: clip(payload.sub),
      tokenId: clip(payload.jti),
    };
  } catch {
    return { jwt: false };
  }
}

const clip = (v: unknown) => (typeof v === "string" ? v.slice(0, 200) : undefined);
