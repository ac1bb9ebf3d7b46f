import type { Command } from "commander";
import type { ClientOptions } from "./api-client.js";
import { loadLogin } from "./credentials.js";

const DEFAULT_HUB = "http://127.0.0.1:8080";

/** --hub/VIGIL_HUB and --ca/VIGIL_CA: where the hub is and how to trust it. */
export function withHubOptions(cmd: Command): Command {
  return cmd
    .option("--hub <url>", "hub API URL (env VIGIL_HUB)", process.env.VIGIL_HUB ?? DEFAULT_HUB)
    .option("--ca <file>", "CA certificate that signed the hub's certificate (env VIGIL_CA)", process.env.VIGIL_CA);
}

/** Add the options every hub client command shares (contract: --hub/VIGIL_HUB, --token/VIGIL_TOKEN). */
export function withClientOptions(cmd: Command): Command {
  return withHubOptions(cmd).option("--token <token>", "your token (env VIGIL_TOKEN; default: from `vigil login`)");
}

export function clientOptions(cmd: Command): ClientOptions {
  const o = cmd.opts<{ hub: string; token?: string; ca?: string }>();
  // The token is read from the environment here rather than as an option default, so --help never prints it.
  return { hub: o.hub, token: o.token ?? process.env.VIGIL_TOKEN ?? loggedInToken(o.hub), ca: o.ca };
}

/** The token `vigil login` stored for this hub, unless it has expired. */
function loggedInToken(hub: string): string | undefined {
  const login = loadLogin(hub);
  if (!login) return undefined;
  if (login.expiresAt && Date.parse(login.expiresAt) <= Date.now()) {
    process.stderr.write(`vigil: your login to ${hub} expired at ${login.expiresAt}; run \`vigil login\` again\n`);
    return undefined;
  }
  return login.token;
}
