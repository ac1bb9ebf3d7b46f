import { join } from "node:path";
import type { Command } from "commander";
import { parseDuration } from "../../lib/duration.js";
import { dataDir, loadConfig } from "../../lib/config/load.js";
import { loadOrCreateKey } from "../../lib/keys.js";
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

  withClientOptions(
    token
      .command("revoke")
      .description("revoke a token by its id (the jti): refused at every hub from now on")
      .argument("<id>", "token id, as `vigil token list` shows it"),
  ).action(async (id: string, _opts: unknown, cmd: Command) => {
    await apiRequest(clientOptions(cmd), "POST", `api/v1/tokens/${encodeURIComponent(id)}/revoke`);
    process.stderr.write(`token ${id} revoked\n`);
  });

  withClientOptions(
    token.command("list").description("list the tokens this hub issued (metadata only; admin groups)"),
  ).action(async (_opts: unknown, cmd: Command) => {
    const { tokens } = await apiRequest<{ tokens: TokenInfo[] }>(clientOptions(cmd), "GET", "api/v1/tokens");
    const rows = tokens.map((t) => [t.id, t.subject, t.groups.join(","), t.expiresAt, t.revoked ? "revoked" : ""]);
    process.stdout.write(table([["ID", "SUBJECT", "GROUPS", "EXPIRES", "STATUS"], ...rows]));
  });
}

interface TokenInfo {
  id: string;
  subject: string;
  groups: string[];
  expiresAt: string;
  revoked: boolean;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map(
      (r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd() + "\n",
    )
    .join("");
}

/** Whoever can read the hub's signing key is its administrator already: let them mint the first token. */
async function signOffline(configFile: string, name: string, groups: string[], ttl: string): Promise<string> {
  const config = loadConfig({ file: configFile, env: process.env });
  const key = loadOrCreateKey(config.identity.signingKeyFile ?? join(dataDir(config), "hub-signing.key"));
  const { LocalTokens } = await import("../../hub/src/identity/local-tokens.js");
  const tokens = new LocalTokens(key, config.identity.issuer, config.identity.audience);
  return (await tokens.issue(name, groups, parseDuration(ttl))).token;
}
