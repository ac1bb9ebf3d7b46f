import type { Command } from "commander";
import * as oidc from "openid-client";
import { apiRequest, type ClientOptions } from "../api-client.js";
import { credentialsPath, saveLogin } from "../credentials.js";
import { withHubOptions } from "../options.js";

interface Info {
  oidc?: { issuer: string; clientId: string }[];
}

interface Me {
  subject: string;
  groups: string[];
  issuer: string;
  expiresAt?: string;
}

export function loginCommand(program: Command): void {
  withHubOptions(
    program
      .command("login")
      .description(
        "log in through the hub's OIDC provider (device flow) and keep the token for later commands " +
          "(an IdP with a private CA: set NODE_EXTRA_CA_CERTS)",
      )
      .option("--issuer <url>", "which of the hub's issuers to use, when it offers several"),
  ).action(async (opts: { hub: string; ca?: string; issuer?: string }) => {
    const hub: ClientOptions = { hub: opts.hub, ca: opts.ca };
    const { issuer, clientId } = chooseIssuer(await apiRequest<Info>(hub, "GET", "api/v1/info"), opts.issuer);
    const token = await deviceLogin(issuer, clientId);
    // Ask the hub before keeping the token: a token it refuses (audience, issuer) is reported now.
    const me = await apiRequest<Me>({ ...hub, token: token.accessToken }, "GET", "api/v1/auth/me");
    saveLogin(opts.hub, {
      token: token.accessToken,
      issuer,
      subject: me.subject,
      expiresAt: me.expiresAt ?? token.expiresAt,
    });
    const groups = me.groups.length ? ` (groups: ${me.groups.join(", ")})` : "";
    process.stderr.write(`Logged in to ${opts.hub} as ${me.subject}${groups}; token kept in ${credentialsPath()}\n`);
  });
}

function chooseIssuer(info: Info, wanted: string | undefined): { issuer: string; clientId: string } {
  const offered = info.oidc ?? [];
  if (offered.length === 0) throw new Error("this hub offers no OIDC login (identity.oidc[].clientId is not set)");
  if (wanted) {
    const found = offered.find((o) => o.issuer === wanted);
    if (!found)
      throw new Error(`the hub does not offer ${wanted} (it offers: ${offered.map((o) => o.issuer).join(", ")})`);
    return found;
  }
  if (offered.length > 1) throw new Error(`choose one with --issuer: ${offered.map((o) => o.issuer).join(", ")}`);
  return offered[0]!;
}

/** OAuth 2.0 device authorization grant: show the code, wait while the person approves it in a browser. */
async function deviceLogin(issuer: string, clientId: string): Promise<{ accessToken: string; expiresAt?: string }> {
  const insecure = issuer.startsWith("http:");
  const config = await oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), {
    execute: insecure ? [oidc.allowInsecureRequests] : [],
  });
  const device = await oidc.initiateDeviceAuthorization(config, { scope: "openid" });
  const page = device.verification_uri_complete ?? device.verification_uri;
  process.stderr.write(
    `To log in, open this page in a browser: ${page}\nand enter (or confirm) the code: ${device.user_code}\n`,
  );
  const tokens = await oidc.pollDeviceAuthorizationGrant(config, device);
  const expiresIn = tokens.expiresIn();
  return {
    accessToken: tokens.access_token,
    expiresAt: expiresIn === undefined ? undefined : new Date(Date.now() + expiresIn * 1000).toISOString(),
  };
}
