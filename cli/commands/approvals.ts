import type { Command } from "commander";
import { formatDuration } from "../../lib/duration.js";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface Approval {
  id: string;
  kind: string;
  effectiveStatus: string;
  requester: { subject: string };
  connection: string;
  policy: string;
  reason?: string;
  durationMs?: number;
  command?: string;
  approvers: { groups: string[]; count: number };
  decisions: { by: string; verdict: string; reason?: string }[];
  expiresAt: string;
  grantExpiresAt?: string;
}

export function approvalsCommand(program: Command): void {
  const approvals = program.command("approvals").description("list and decide just-in-time approval requests");
  withClientOptions(approvals.command("list").description("requests you made or may decide (admins: all)"))
    .option("--status <status>", "pending, approved, denied, expired or cancelled", "pending")
    .option("--json", "print JSON")
    .action(async (opts: { status: string; json?: boolean }, cmd: Command) => {
      const { approvals: list } = await apiRequest<{ approvals: Approval[] }>(
        clientOptions(cmd),
        "GET",
        `api/v1/approvals?status=${encodeURIComponent(opts.status)}`,
      );
      if (opts.json) return void process.stdout.write(JSON.stringify(list, null, 2) + "\n");
      if (list.length === 0) return void process.stdout.write(`no ${opts.status} approvals\n`);
      for (const a of list) process.stdout.write(describe(a) + "\n");
    });
  for (const verdict of ["approve", "deny"] as const) {
    withClientOptions(approvals.command(verdict).description(`${verdict} a request`).argument("<id>", "approval id"))
      .option("--reason <text>", "why, for the record")
      .action(async (id: string, opts: { reason?: string }, cmd: Command) => {
        const a = await apiRequest<Approval>(
          clientOptions(cmd),
          "POST",
          `api/v1/approvals/${encodeURIComponent(id)}/${verdict}`,
          opts.reason ? { reason: opts.reason } : {},
        );
        process.stdout.write(describe(a) + "\n");
      });
  }
}

export function describe(a: Approval): string {
  const what =
    a.kind === "access"
      ? `access to ${a.connection} for ${formatDuration(a.durationMs ?? 0)}`
      : `${a.command ?? ""} on ${a.connection}`;
  const votes = a.decisions.map((d) => `${d.by} ${d.verdict}d${d.reason ? ` ("${d.reason}")` : ""}`).join(", ");
  return [
    `${a.id}  ${a.effectiveStatus}`,
    `  ${a.requester.subject} requests ${what} (policy ${a.policy})${a.reason ? `: ${a.reason}` : ""}`,
    `  approvers: ${a.approvers.count} from ${a.approvers.groups.join(" or ")}${votes ? `; ${votes}` : ""}`,
    a.effectiveStatus === "pending"
      ? `  decide by ${a.expiresAt}`
      : a.grantExpiresAt
        ? `  access until ${a.grantExpiresAt}`
        : "",
  ]
    .filter(Boolean)
    .join("\n");
}
