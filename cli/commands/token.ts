import { join } from "node:path";
import type { Command } from "commander";
import { parseDuration } from "../../lib/duration.js";
import { dataDir, loadConfig } from "../../lib/config/load.js";
import { loadOrCreateKey } from "../../lib/keys.js";
import { LocalTokens } from "../../hub/src/identity/local-tokens.js";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface CreateOptions {
  name: string;
  groups: string;
  ttl: string;
  config?: string;
}

export function tokenCommand(program: Command): void {
  const token = program.command("token").description("manage hub-signed tokens for agents and service accounts");
  withClientOptions(
    token
      .command("create")
      .description("issue a token (prints only the token)")
      .requiredOption("--name <name>", "subject of the token, e.g. ci-bot")
      .option("--groups <list>", "comma-separated groups", "")
      .option("--ttl <duration>", "lifetime: 30m, 1h, 7d", "1h")
      .option("--config <file>", "sign offline with the hub's own key from this hub config (bootstrap, no API call)"),
  ).action(async (opts: CreateOptions, cmd: Command) => {
    const groups = opts.groups
      .split(",")
      .map((g) => g.trim())
      .filter(Boolean);
    const token = opts.config
      ? await signOffline(opts.config, opts.name, groups, opts.ttl)
      : (
          await apiRequest<{ token: string }>(clientOptions(cmd), "POST", "api/v1/tokens", {
            name: opts.name,
            groups,
            ttl: opts.ttl,
          })
        ).token;
    process.stdout.write(token + "\n");
  });
}

/** Whoever can read the hub's signing key is its administrator already: let them mint the first token. */
async function signOffline(configFile: string, name: string, groups: string[], ttl: string): Promise<string> {
  const config = loadConfig({ file: configFile, env: process.env });
  const key = loadOrCreateKey(config.identity.signingKeyFile ?? join(dataDir(config), "hub-signing.key"));
  const tokens = new LocalTokens(key, config.identity.issuer, config.identity.audience);
  return (await tokens.issue(name, groups, parseDuration(ttl))).token;
}
