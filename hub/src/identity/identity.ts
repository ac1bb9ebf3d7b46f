import { VigilError } from "../../../lib/errors.js";
import type { LocalTokens } from "./local-tokens.js";

/** Who is calling, as every front door and the API see it. */
export interface Identity {
  subject: string;
  groups: string[];
  issuer: string;
  tokenId?: string;
  expiresAt?: Date;
}

/**
 * The one verification path for every front door. Local tokens today; OIDC issuers plug in here
 * and are chosen by the token's `iss`.
 */
export class Authenticator {
  constructor(
    private readonly local: LocalTokens,
    private readonly adminGroups: readonly string[],
  ) {}

  async verify(token: string | undefined): Promise<Identity> {
    if (!token) throw new VigilError("bad_token", "no token presented");
    return this.local.verify(token);
  }

  /** Parse an `Authorization: Bearer …` value and verify it. */
  async verifyBearer(header: string | undefined): Promise<Identity> {
    if (!header) throw new VigilError("bad_token", "missing Authorization: Bearer token");
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new VigilError("bad_token", "Authorization header must be: Bearer <token>");
    return this.verify(m[1]);
  }

  isAdmin(identity: Identity): boolean {
    return identity.groups.some((g) => this.adminGroups.includes(g));
  }
}
