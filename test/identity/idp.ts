// A real OpenID provider (oidc-provider 9) for identity tests, in-process on a free loopback port.
//
// Clients:
//   machine   confidential, client_credentials; with `resource: audience` it gets a JWT access token (at+jwt)
//   device    public, device_code + authorization_code (PKCE): the human logins (`vigil login`, web login)
//   opaque    confidential, client_credentials; its tokens for the audience are opaque (introspection only)
//   hub       confidential, used by the hub to call the introspection endpoint
//
// Interactions use oidc-provider's built-in `devInteractions` (login form accepting any login, consent form):
// `approveDevice` and `Browser` drive them over plain HTTP, the way a browser would.
import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import Provider, { type Configuration } from "oidc-provider";
import * as oidc from "openid-client";
import { freePort } from "../support/services.js";
import { Browser } from "./browser.js";

export const AUDIENCE = "urn:vigil:hub";
const KID = "test-rs256";

/** Groups each account (login name) or client belongs to. */
const GROUPS: Record<string, string[]> = {
  alice: ["vigil-admins", "dev"],
  bob: ["dev"],
  machine: ["ci", "deploy"],
  opaque: ["batch"],
};

export interface Client {
  id: string;
  secret: string;
}

export interface TestIdp {
  issuer: string;
  audience: string;
  machine: Client;
  opaque: Client;
  hub: Client;
  deviceClientId: string;
  /** The IdP's own signing key, to forge tokens the IdP could have issued (an expired one, say). */
  sign(claims: JWTPayload, opts?: { typ?: string }): Promise<string>;
  /** client_credentials grant at the token endpoint; `resource` selects the audience. */
  clientCredentials(client: Client, resource?: string): Promise<string>;
  /** RFC 7009 revocation at the IdP. */
  revoke(client: Client, token: string): Promise<void>;
  /** Play the human: open the verification URI, sign in as `login` and consent. */
  approveDevice(verificationUriComplete: string, login: string): Promise<void>;
  /** A person's access token through the whole device flow (what `vigil login` gets). */
  deviceToken(login: string): Promise<string>;
  close(): Promise<void>;
}

export interface IdpOptions {
  /** Redirect URIs registered for the device (public) client's authorization-code logins. */
  redirectUris?: string[];
  /** Listen on this port (to restart an IdP on the same issuer). */
  port?: number;
}

export async function startIdp(opts: IdpOptions = {}): Promise<TestIdp> {
  const port = opts.port ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: KID, alg: "RS256", use: "sig" };
  const machine = { id: "machine", secret: "machine-secret-0123456789abcdef" };
  const opaque = { id: "opaque", secret: "opaque-secret-0123456789abcdef" };
  const hub = { id: "vigil-hub", secret: "hub-secret-0123456789abcdef" };
  const deviceClientId = "vigil-cli";

  const config: Configuration = {
    jwks: { keys: [jwk] },
    clients: [
      {
        client_id: machine.id,
        client_secret: machine.secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      },
      {
        client_id: opaque.id,
        client_secret: opaque.secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      },
      {
        client_id: hub.id,
        client_secret: hub.secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      },
      {
        client_id: deviceClientId,
        token_endpoint_auth_method: "none",
        grant_types: ["urn:ietf:params:oauth:grant-type:device_code", "authorization_code", "refresh_token"],
        response_types: ["code"],
        redirect_uris: opts.redirectUris ?? ["http://127.0.0.1/unused"],
      },
    ],
    findAccount: (_ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, email: `${id}@example.test`, groups: GROUPS[id] ?? [] }),
    }),
    claims: { openid: ["sub"], email: ["email"], groups: ["groups"] },
    scopes: ["openid", "email", "groups", "offline_access"],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: {
        enabled: true,
        successSource: (ctx) => {
          ctx.body = "<!DOCTYPE html><title>Sign-in Success</title><p>Sign-in Success</p>";
        },
      },
      // Test clients are all trusted: the hub introspects anyone's tokens, a client revokes its own.
      introspection: { enabled: true, allowedPolicy: () => true },
      revocation: { enabled: true, allowedPolicy: () => true },
      resourceIndicators: {
        enabled: true,
        // Humans (device/code logins) get a token for Vigil without naming the resource.
        defaultResource: (_ctx, client, oneOf) => oneOf ?? (client.clientId === deviceClientId ? AUDIENCE : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, _indicator, client) => ({
          scope: "vigil",
          // Any indicator is accepted, and is the token's audience: "wrong audience" tests ask for another one.
          accessTokenFormat: client.clientId === opaque.id ? "opaque" : "jwt",
          accessTokenTTL: 600,
          jwt: { sign: { alg: "RS256" } },
        }),
      },
    },
    extraTokenClaims: (_ctx, token) => ({
      groups: GROUPS[("accountId" in token ? token.accountId : undefined) ?? token.clientId ?? ""] ?? [],
    }),
    pkce: { required: () => true },
    ttl: {
      DeviceCode: 600,
      AccessToken: 600,
      ClientCredentials: 600,
      Grant: 600,
      IdToken: 600,
      Interaction: 600,
      Session: 600,
    },
  };
  const provider = new Provider(issuer, config);
  // Quiet: oidc-provider reports expected client errors (invalid_grant while polling, …) through events.
  provider.on("server_error", (_ctx, err) => process.stderr.write(`idp server_error: ${err.message}\n`));
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, "127.0.0.1", resolve));

  const tokenEndpoint = `${issuer}/token`;
  const basic = (c: Client) => `Basic ${Buffer.from(`${c.id}:${c.secret}`).toString("base64")}`;
  const post = async (url: string, client: Client, form: Record<string, string>) => {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text}`);
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  };

  return {
    issuer,
    audience: AUDIENCE,
    machine,
    opaque,
    hub,
    deviceClientId,
    sign: (claims, o = {}) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", kid: KID, typ: o.typ ?? "at+jwt" })
        .sign(privateKey as CryptoKey),
    async clientCredentials(client, resource) {
      const form: Record<string, string> = { grant_type: "client_credentials", scope: "vigil" };
      if (resource) form.resource = resource;
      const body = await post(tokenEndpoint, client, form);
      return String(body.access_token);
    },
    async revoke(client, token) {
      await post(`${issuer}/token/revocation`, client, { token });
    },
    approveDevice: (uri, login) => approveDevice(uri, login),
    async deviceToken(login) {
      const config = await oidc.discovery(new URL(issuer), deviceClientId, undefined, oidc.None(), {
        execute: [oidc.allowInsecureRequests],
      });
      const device = await oidc.initiateDeviceAuthorization(config, { scope: "openid" });
      const polled = oidc.pollDeviceAuthorizationGrant(config, device);
      await approveDevice(device.verification_uri_complete!, login);
      return (await polled).access_token;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Device flow as a person in a browser: confirm the code, sign in, consent, reach the success page. */
async function approveDevice(verificationUriComplete: string, login: string): Promise<void> {
  const browser = new Browser();
  // The verification page auto-posts a form carrying the user code and an anti-CSRF token.
  let page = await browser.get(verificationUriComplete);
  page = await browser.submitForm(page, { confirm: "yes" });
  page = await browser.submitForm(page, { login, password: "any" }); // login prompt
  page = await browser.submitForm(page, {}); // consent prompt
  if (!/Sign-in Success/i.test(page.body)) throw new Error(`device flow did not succeed:\n${page.body.slice(0, 2000)}`);
}

/** The `identity` section of a hub config that trusts `idp` (JWT, introspection and human logins). */
export function trustIdp(idp: TestIdp, extra: object = {}): object {
  return {
    oidc: [
      {
        issuer: idp.issuer,
        audience: idp.audience,
        groupsClaim: "groups",
        usernameClaim: "sub",
        clientId: idp.deviceClientId,
        introspection: { clientId: idp.hub.id, clientSecret: idp.hub.secret },
      },
    ],
    ...extra,
  };
}
