import type { Command } from "commander";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

export function tokenCommand(program: Command): void {
  const token = program.command("token").description("manage hub-signed tokens for agents and service accounts");
  withClientOptions(
    token
      .command("create")
      .description("issue a token (prints only the token)")
      .requiredOption("--name <name>", "subject of the token, e.g. ci-bot")
      .option("--groups <list>", "comma-separated groups", "")
      .option("--ttl <duration>", "lifetime: 30m, 1h, 7d", "1h"),
  ).action(async (opts: { name: string; groups: string; ttl: string }, cmd: Command) => {
    const groups = opts.groups.split(",").map((g) => g.trim()).filter(Boolean);
    const res = await apiRequest<{ token: string }>(clientOptions(cmd), "POST", "api/v1/tokens", {
      name: opts.name,
      groups,
      ttl: opts.ttl,
    });
    process.stdout.write(res.token + "\n");
  });
}
