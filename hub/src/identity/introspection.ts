import * as oidc from "openid-client";
import { claim, groupsFrom, usernameFrom } from "./claims.js";
import type { Identity } from "./identity.js";
import type { OidcIssuer } from "./oidc-issuer.js";
import { CLOCK_TOLERANCE_SECONDS, refused } from "./token-errors.js";

export type IntrospectionResult =
  { kind: "active"; identity: Identity } | { kind: "inactive" } | { kind: "unavailable"; reason: string };

/** RFC 7662 introspection of opaque access tokens at one issuer. */
export class Introspector {
  private readonly secret: string;

  constructor(private readonly issuer: OidcIssuer) {
    const settings = issuer.config.introspection!;
    const secret =
      settings.clientSecret ?? (settings.clientSecretEnv ? process.env[settings.clientSecretEnv] : undefined);
    if (!secret) {
      const where = settings.clientSecretEnv
        ? `environment variable ${settings.clientSecretEnv} is not set`
        : "required";
      throw new Error(`config: identity.oidc (${issuer.issuer}).introspection.clientSecret: ${where}`);
    }
    this.secret = secret;
  }

  get name(): string {
    return this.issuer.issuer;
  }

  /**
   * Ask the IdP. An active token that is not for us (issuer, audience, expiry) is refused with the reason;
   * an IdP that cannot answer is reported as unavailable, so the next issuer may still be asked.
   */
  async introspect(token: string): Promise<IntrospectionResult> {
    const { config: settings } = this.issuer;
    const { clientId, authMethod } = settings.introspection!;
    const auth =
      authMethod === "client_secret_post" ? oidc.ClientSecretPost(this.secret) : oidc.ClientSecretBasic(this.secret);
    let answer: oidc.IntrospectionResponse;
    try {
      answer = await oidc.tokenIntrospection(await this.issuer.client(clientId, undefined, auth), token);
    } catch (err) {
      return { kind: "unavailable", reason: `introspection at "${this.name}" failed: ${(err as Error).message}` };
    }
    if (!answer.active) return { kind: "inactive" };
    if (answer.iss !== undefined && answer.iss !== settings.issuer)
      throw refused(`token claim "iss" is not valid: introspection answered for "${answer.iss}"`);
    const audiences = typeof answer.aud === "string" ? [answer.aud] : (answer.aud ?? []);
    if (answer.aud !== undefined && !audiences.includes(settings.audience))
      throw refused(`token claim "aud" is not valid: not issued for "${settings.audience}"`);
    const now = Date.now() / 1000;
    if (answer.exp !== undefined && answer.exp + CLOCK_TOLERANCE_SECONDS <= now) throw refused("token expired");
    const identity: Identity = {
      subject: subjectOf(answer, settings.usernameClaim),
      groups: groupsFrom(claim(answer, settings.groupsClaim)),
      issuer: settings.issuer,
      tokenId: typeof answer.jti === "string" ? answer.jti : undefined,
      expiresAt: answer.exp !== undefined ? new Date(answer.exp * 1000) : undefined,
    };
    return { kind: "active", identity };
  }
}

// RFC 7662 makes `sub` optional: a client_credentials token has no user, so the client is the subject.
function subjectOf(answer: oidc.IntrospectionResponse, usernameClaim: string): string {
  if (usernameClaim === "sub" && answer.sub === undefined && typeof answer.client_id === "string")
    return answer.client_id;
  return usernameFrom(answer, usernameClaim);
}
