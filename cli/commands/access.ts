import type { Command } from "commander";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";
import { describe } from "./approvals.js";

type Approval = Parameters<typeof describe>[0];

export function accessCommand(program: Command): void {
  const access = program.command("access").description("time-bounded access to a connection, approved by a human");
  withClientOptions(
    access
      .command("request")
      .description("ask for access; once approved you may connect until it expires")
      .argument("<connection>", "connection name")
      .requiredOption("--for <duration>", "how long: 30m, 2h")
      .requiredOption("--reason <text>", "why (shown to the approvers)")
      .option("--wait", "wait for the decision and exit non-zero unless approved"),
  ).action(async (connection: string, opts: { for: string; reason: string; wait?: boolean }, cmd: Command) => {
    const client = clientOptions(cmd);
    let a = await apiRequest<Approval>(client, "POST", "api/v1/access", {
      connection,
      duration: opts.for,
      reason: opts.reason,
    });
    process.stdout.write(describe(a) + "\n");
    if (!opts.wait) return;
    while (a.effectiveStatus === "pending") {
      await new Promise((r) => setTimeout(r, 1000));
      a = await apiRequest<Approval>(client, "GET", `api/v1/approvals/${a.id}`);
    }
    process.stdout.write(describe(a) + "\n");
    if (a.effectiveStatus !== "approved") process.exit(3);
  });
}
