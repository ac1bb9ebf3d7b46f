/** Who is calling, as every front door and the API see it. */
export interface Identity {
  subject: string;
  groups: string[];
  issuer: string;
  tokenId?: string;
  expiresAt?: Date;
}

export { Authenticator, type FrontDoor } from "./authenticator.js";
