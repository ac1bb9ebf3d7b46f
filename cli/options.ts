import type { Command } from "commander";
import type { ClientOptions } from "./api-client.js";

/** Add the options every hub client command shares (contract: --hub/VIGIL_HUB, --token/VIGIL_TOKEN). */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option("--hub <url>", "hub API URL (env VIGIL_HUB)", process.env.VIGIL_HUB ?? "http://127.0.0.1:8080")
    .option("--token <token>", "your token (env VIGIL_TOKEN)")
    .option("--ca <file>", "CA certificate that signed the hub's certificate (env VIGIL_CA)", process.env.VIGIL_CA);
}

export function clientOptions(cmd: Command): ClientOptions {
  const o = cmd.opts<{ hub: string; token?: string; ca?: string }>();
  // The token is read from the environment here rather than as an option default, so --help never prints it.
  return { hub: o.hub, token: o.token ?? process.env.VIGIL_TOKEN, ca: o.ca };
}
