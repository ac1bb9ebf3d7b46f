import { jwtVerify } from "jose";
import { claim, groupsFrom, usernameFrom } from "./claims.js";
import type { Identity } from "./identity.js";
import type { OidcIssuer } from "./oidc-issuer.js";
import { ASYMMETRIC_ALGORITHMS, CLOCK_TOLERANCE_SECONDS, refused, tokenErrorReason } from "./token-errors.js";

// RFC 9068 access tokens say at+jwt; many IdPs still say JWT or nothing.
const ACCEPTED_TYPES = new Set([undefined, "jwt", "at+jwt", "application/at+jwt"]);

/** JWT access tokens of one OIDC issuer, checked against its JWKS, issuer and the configured audience. */
export class OidcVerifier {
  constructor(private readonly issuer: OidcIssuer) {}

  async verify(token: string): Promise<Identity> {
    const { jwks } = await this.issuer.get();
    const { config } = this.issuer;
    try {
      const { payload, protectedHeader } = await jwtVerify(token, jwks, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: ASYMMETRIC_ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ["exp"],
      });
      if (!ACCEPTED_TYPES.has(protectedHeader.typ?.toLowerCase()))
        throw refused(`token type "${protectedHeader.typ}" is not an access token`);
      return {
        subject: usernameFrom(payload, config.usernameClaim),
        groups: groupsFrom(claim(payload, config.groupsClaim)),
        issuer: config.issuer,
        tokenId: typeof payload.jti === "string" ? payload.jti : undefined,
        expiresAt: new Date(payload.exp! * 1000),
      };
    } catch (err) {
      throw refused(tokenErrorReason(err), err);
    }
  }
}
