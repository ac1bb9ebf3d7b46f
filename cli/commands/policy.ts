import type { Command } from "commander";
import { formatDuration } from "../../lib/duration.js";
import type { PolicyConnection } from "../../lib/policy/compile.js";
import type { Decision } from "../../lib/policy/evaluate.js";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface TestOptions {
  identity: string;
  groups: string;
  connection: string;
  type?: string;
  label: string[];
  segment?: string;
  policies?: string;
  json?: boolean;
}

interface TestResult {
  connection: PolicyConnection;
  connect: { granted: boolean; by: string[] };
  decision?: Decision;
}

export function policyCommand(program: Command): void {
  const policy = program.command("policy").description("check what the policies decide");
  withClientOptions(
    policy
      .command("test")
      .description(
        "print the decision for an identity, a connection and (optionally) a command, and the rule that made it",
      )
      .argument("[command]", 'SQL, a shell line, or "METHOD /path" for http/kubernetes')
      .requiredOption("--identity <subject>", "who runs the command")
      .option("--groups <list>", "comma-separated groups of that identity", "")
      .requiredOption("--connection <name>", "the connection")
      .option("--type <type>", "connection type (default: as the hub's relays report it)")
      .option("--label <k=v>", "connection label (repeatable)", (v: string, all: string[]) => [...all, v], [])
      .option("--segment <segment>", "segment of the relay")
      .option("--policies <glob>", "evaluate these policy files locally instead of asking the hub (needs --type)")
      .option("--json", "print the result as JSON"),
  ).action(async (command: string | undefined, opts: TestOptions, cmd: Command) => {
    const groups = opts.groups
      .split(",")
      .map((g) => g.trim())
      .filter(Boolean);
    const labels = Object.fromEntries(opts.label.map((l) => l.split("=", 2) as [string, string]));
    const result = opts.policies
      ? await testLocally(opts, groups, labels, command)
      : await apiRequest<TestResult>(clientOptions(cmd), "POST", "api/v1/policy/test", {
          subject: opts.identity,
          groups,
          connection: opts.connection,
          command,
          type: opts.type,
          labels: opts.label.length ? labels : undefined,
          segment: opts.segment,
        });
    process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + "\n" : describe(result));
  });
}

async function testLocally(
  opts: TestOptions,
  groups: string[],
  labels: Record<string, string>,
  command: string | undefined,
): Promise<TestResult> {
  if (!opts.type) throw new Error("--policies needs --type (postgres, ssh, http, kubernetes or tcp)");
  // The policy engine (and the SQL parser) load only when a test runs offline.
  const [{ compilePolicy }, { evaluate, preparePolicy }, { loadPolicies }, { parseCommand }] = await Promise.all([
    import("../../lib/policy/compile.js"),
    import("../../lib/policy/evaluate.js"),
    import("../../lib/policy/load.js"),
    import("../../lib/policy/parse-command.js"),
  ]);
  const connection: PolicyConnection = { name: opts.connection, type: opts.type, labels, segment: opts.segment ?? "" };
  const compiled = compilePolicy(loadPolicies([opts.policies!]), { subject: opts.identity, groups }, connection);
  const decision =
    command === undefined ? undefined : evaluate(preparePolicy(compiled), await parseCommand(opts.type, command));
  return { connection, connect: { granted: compiled.connect, by: compiled.grantedBy }, decision };
}

function describe(r: TestResult): string {
  const lines = [
    `connect   ${r.connect.granted ? `granted by ${r.connect.by.join(", ")}` : "refused: no policy grants connect"}`,
  ];
  const d = r.decision;
  if (d?.effect === "deny") lines.push(`decision  deny    rule ${d.rule}`);
  if (d?.effect === "review") {
    const a = d.approvers;
    lines.push(
      `decision  review  rule ${d.rule}; ${a.count} approval(s) from ${a.groups.join(" or ")} within ${formatDuration(a.timeoutMs)}`,
    );
  }
  if (d?.effect === "allow") lines.push(`decision  allow   ${d.rule ? `rule ${d.rule}` : "no rule matched"}`);
  if (
    d &&
    d.effect !== "deny" &&
    d.masks.live.detectors.length + d.masks.live.columns.length + d.masks.live.fields.length > 0
  ) {
    lines.push(
      `masks     live: ${[...d.masks.live.detectors, ...d.masks.live.columns, ...d.masks.live.fields].join(", ")}`,
    );
  }
  if (r.decision && !r.connect.granted) lines.push("          (the command would never run: the session is refused)");
  return lines.join("\n") + "\n";
}
