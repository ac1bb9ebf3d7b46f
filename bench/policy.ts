import { cpus } from "node:os";
import type { BenchResult } from "./run.js";
import type { SqlCommand } from "../lib/policy/command.js";
import { analyzeSql, loadSqlParser } from "../lib/analyze/sql.js";
import { compilePolicy } from "../lib/policy/compile.js";
import { evaluate, preparePolicy, type Decision } from "../lib/policy/evaluate.js";
import { loadPolicies, parsePolicyFile } from "../lib/policy/load.js";

/** Twenty team policies on top of the default one: what a mid-size fleet's policy looks like. */
function teamPolicies(): string {
  const teams = Array.from({ length: 20 }, (_, i) => `team${i}`);
  return (
    "policies:\n" +
    teams
      .map(
        (t, i) => `  - name: ${t}
    match:
      groups: [${t}, vigil-admins]
      connections: [{ name: "pg-*", labels: { env: prod } }]
    connect: true
    rules:
      - { name: no-${t}-secrets, effect: deny, sql: { tables: ["${t}_secrets", "*.${t}_keys"] } }
      - { name: review-${t}-bulk, effect: review, approvers: { groups: [${t}-leads] }, sql: { statements: [update, delete], tables: ["${t}_*"], where: absent } }
      - { name: no-${t}-fn-${i}, effect: deny, sql: { functions: ["${t}_purge*"] } }
      - { name: mask-${t}, effect: mask, mask: { columns: ["${t}_users.ssn"], apply: live }, sql: { tables: ["${t}_users"] } }
`,
      )
      .join("")
  );
}

const STATEMENTS = [
  "SELECT abalance FROM pgbench_accounts WHERE aid = 42",
  "UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 42",
  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, now())",
  "SELECT u.id, u.email, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE o.created_at > now() - interval '1 day'",
  "DELETE FROM sessions WHERE expires_at < now()",
  "DELETE FROM team3_events",
  "WITH d AS (DELETE FROM audit_log RETURNING *) SELECT count(*) FROM d",
  "SELECT * FROM team7_users WHERE id = 7",
  "CREATE INDEX CONCURRENTLY idx_orders_user ON orders (user_id)",
  "BEGIN",
  "COMMIT",
  "SELECT pg_sleep(0.01)",
  "TRUNCATE staging_import",
  "SELECT team5_purge_all()",
];

export async function run(): Promise<BenchResult> {
  await loadSqlParser();
  const set = loadPolicies(["policies/default.yaml"]);
  set.policies.push(...parsePolicyFile(teamPolicies(), "bench-teams.yaml"));
  const compiled = compilePolicy(
    set,
    { subject: "agent-7", groups: ["team3", "team7"] },
    { name: "pg-prod", type: "postgres", labels: { env: "prod" }, segment: "eu-1" },
  );
  const prepared = preparePolicy(compiled);
  const commands: SqlCommand[] = STATEMENTS.map((s) => analyzeSql(s));

  const effects = new Map<string, number>();
  let sink: Decision | undefined;
  const measure = (ms: number): number => {
    let n = 0;
    const end = process.hrtime.bigint() + BigInt(ms) * 1_000_000n;
    while (process.hrtime.bigint() < end) {
      for (let i = 0; i < 1000; i++) sink = evaluate(prepared, commands[(n + i) % commands.length]!);
      n += 1000;
    }
    return n / (ms / 1000);
  };
  measure(500); // warm up the JIT
  const rate = Math.max(measure(2000), measure(2000));
  for (const c of commands) {
    const e = evaluate(prepared, c).effect;
    effects.set(e, (effects.get(e) ?? 0) + 1);
  }
  void sink;

  const parseRate = (() => {
    const t0 = process.hrtime.bigint();
    let n = 0;
    for (; n < 20_000; n++) analyzeSql(STATEMENTS[n % STATEMENTS.length]!);
    return n / (Number(process.hrtime.bigint() - t0) / 1e9);
  })();

  return {
    name: "policy",
    title: "Policy evaluation (one core)",
    when: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
    command: "npm run bench -- policy",
    rows: [
      {
        metric: "decisions per second",
        direct: null,
        vigil: rate / 1000,
        unit: "k/s",
        ratio: null,
        better: "higher",
        target: "≥ 200 k/s",
      },
      {
        metric: "SQL parse, cached statement text",
        direct: null,
        vigil: parseRate / 1000,
        unit: "k/s",
        ratio: null,
        better: "higher",
      },
    ],
    notes: [
      `Policy: policies/default.yaml plus 20 team policies; ${compiled.rules.length} rules apply to the session. ${STATEMENTS.length} statements in rotation (${[...effects].map(([e, n]) => `${n} ${e}`).join(", ")}).`,
      "Evaluation is the pure function the relay runs per statement, on pre-parsed commands; parsing is cached per statement text.",
    ],
  };
}
