import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Config } from "../../../lib/config/schema.js";
import { loadOrCreateKey } from "../../../lib/keys.js";
import type { Logger } from "../../../lib/log.js";
import { Authenticator } from "./authenticator.js";
import { Introspector } from "./introspection.js";
import { LocalTokens } from "./local-tokens.js";
import { OidcIssuer } from "./oidc-issuer.js";
import { OidcVerifier } from "./oidc-verifier.js";
import { SessionTokens } from "./sessions.js";
import { FileTokenStore, type TokenStore } from "./token-store.js";
import { NatsTokenStore } from "./token-store-nats.js";
import { WebLogin } from "./web-login.js";

/** Everything the hub needs to know who is calling: built once, shared by every front door and the API. */
export interface IdentityLayer {
  auth: Authenticator;
  tokens: LocalTokens;
  store: TokenStore;
  web: WebLogin;
  close(): Promise<void>;
}

export async function startIdentity(
  config: Config,
  deps: { nats?: NatsConnection; dataDir: string; log: Logger },
): Promise<IdentityLayer> {
  const { identity } = config;
  const log = deps.log.child({ component: "identity" });
  const clash = identity.oidc.find((o) => o.issuer === identity.issuer);
  if (clash) throw new Error(`config: identity.oidc: issuer "${clash.issuer}" is also identity.issuer (local tokens)`);

  const key = loadOrCreateKey(identity.signingKeyFile ?? join(deps.dataDir, "hub-signing.key"));
  const store: TokenStore = deps.nats
    ? await NatsTokenStore.open(deps.nats, log)
    : new FileTokenStore(join(deps.dataDir, "tokens.json"));
  const tokens = new LocalTokens(key, identity.issuer, identity.audience, store);
  const sessions = new SessionTokens(key, identity.issuer, store);

  const issuers = identity.oidc.map((o) => new OidcIssuer(o, log));
  const introspectors = issuers.filter((i) => i.config.introspection).map((i) => new Introspector(i));
  const oidc = new Map(issuers.map((i) => [i.issuer, new OidcVerifier(i)]));
  const auth = new Authenticator(tokens, identity.adminGroups, { oidc, introspectors, sessions, log });
  for (const issuer of issuers) issuer.start();

  return {
    auth,
    tokens,
    store,
    web: new WebLogin(issuers, sessions, auth, log, identity.publicUrl),
    close: async () => {
      for (const issuer of issuers) issuer.close();
      await store.close();
    },
  };
}
