import * as oidc from "openid-client";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import type { Authenticator } from "./authenticator.js";
import type { Identity } from "./identity.js";
import type { OidcIssuer } from "./oidc-issuer.js";
import type { SessionTokens } from "./sessions.js";
import { refused } from "./token-errors.js";

/** An issuer humans can log in with: advertised in /api/v1/info for `vigil login` and the web UI. */
export interface LoginIssuer {
  issuer: string;
  clientId: string;
}

export interface Session {
  token: string;
  identity: Identity;
  expiresAt: Date;
  returnTo: string;
}

const LOGIN_STATE_TTL_SECONDS = 600;
const SESSION_MAX_SECONDS = 12 * 3600;
const SESSION_MIN_SECONDS = 60;

/**
 * Browser login: authorization code + PKCE + state + nonce at the IdP, then a hub-signed session cookie.
 * The session lasts as long as the access token it was made from (at most 12 h); the token is not kept.
 */
export class WebLogin {
  constructor(
    private readonly issuers: readonly OidcIssuer[],
    private readonly sessions: SessionTokens,
    private readonly auth: Authenticator,
    private readonly log: Logger,
    /** External URL of the hub API (identity.publicUrl), when the request's own URL is not what browsers use. */
    readonly publicUrl?: string,
  ) {}

  loginIssuers(): LoginIssuer[] {
    return this.issuers.flatMap((i) => (i.config.clientId ? [{ issuer: i.issuer, clientId: i.config.clientId }] : []));
  }

  /** Where to send the browser, and the state cookie to set for the callback. */
  async begin(issuer: string | undefined, redirectUri: string, returnTo: string): Promise<{ url: URL; state: string }> {
    const chosen = this.choose(issuer);
    const client = await chosen.client(chosen.config.clientId!, undefined, oidc.None());
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const state = {
      issuer: chosen.issuer,
      state: oidc.randomState(),
      nonce: oidc.randomNonce(),
      codeVerifier,
      returnTo,
    };
    const url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: redirectUri,
      response_type: "code",
      scope: "openid",
      state: state.state,
      nonce: state.nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: "S256",
    });
    return { url, state: await this.sessions.loginState(state, LOGIN_STATE_TTL_SECONDS) };
  }

  /** Finish at the callback URL the IdP redirected to; the access token is verified like any other. */
  async complete(callbackUrl: URL, stateCookie: string | undefined): Promise<Session> {
    if (!stateCookie) throw new VigilError("bad_request", "login state is missing or expired: start the login again");
    const login = await this.sessions.openLoginState(stateCookie);
    const chosen = this.choose(login.issuer);
    const client = await chosen.client(chosen.config.clientId!, undefined, oidc.None());
    let tokens: oidc.TokenEndpointResponse;
    try {
      tokens = await oidc.authorizationCodeGrant(client, callbackUrl, {
        pkceCodeVerifier: login.codeVerifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw refused(`login at "${chosen.issuer}" failed: ${describe(err)}`, err);
    }
    const identity = await this.auth.verify(tokens.access_token);
    const lifetime = identity.expiresAt
      ? Math.floor((identity.expiresAt.getTime() - Date.now()) / 1000)
      : SESSION_MAX_SECONDS;
    const ttl = Math.max(SESSION_MIN_SECONDS, Math.min(SESSION_MAX_SECONDS, lifetime));
    const session = await this.sessions.issue(identity, ttl);
    this.log.info(
      { audit: "auth.login", subject: identity.subject, issuer: identity.issuer, session: session.id },
      "web login",
    );
    return { token: session.token, identity, expiresAt: session.expiresAt, returnTo: login.returnTo };
  }

  async end(identity: Identity): Promise<void> {
    await this.sessions.end(identity);
    this.log.info({ audit: "auth.logout", subject: identity.subject, session: identity.tokenId }, "web logout");
  }

  private choose(issuer: string | undefined): OidcIssuer {
    const candidates = this.issuers.filter((i) => i.config.clientId);
    if (candidates.length === 0)
      throw new VigilError("bad_request", "no OIDC issuer with a clientId is configured for login");
    if (issuer === undefined) {
      if (candidates.length === 1) return candidates[0]!;
      throw new VigilError("bad_request", `choose an issuer: ${candidates.map((i) => i.issuer).join(", ")}`);
    }
    const found = candidates.find((i) => i.issuer === issuer);
    if (!found) throw new VigilError("bad_request", `issuer ${JSON.stringify(issuer)} is not configured for login`);
    return found;
  }
}

function describe(err: unknown): string {
  if (err instanceof oidc.AuthorizationResponseError)
    return `${err.error}${err.error_description ? ` (${err.error_description})` : ""}`;
  if (!(err instanceof Error)) return String(err);
  // openid-client wraps the precise finding (say, a state mismatch) as the cause.
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}
