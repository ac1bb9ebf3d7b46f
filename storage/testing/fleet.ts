// A generated fleet's recordings, shaped like what relays record: postgres, ssh, kubernetes and http
// sessions of ~100 events (commands with results, approvals for reviewed ones, terminal output for
// ssh), 40 users, 5 segments, spread over 30 days. Deterministic for a seed; hashes are random bytes
// rather than a real chain, which keeps 10 million events quick to make and changes no stored byte
// count. bench/recording-store.ts stores them.
import { randomBytes, randomUUID } from "node:crypto";
import type { EventBody } from "../../lib/recording/chain.js";
import { Decision, Stream, type RecordingEvent, type Value } from "../../proto/gen/vigil/v1/recording.js";

/** mulberry32: a tiny seeded PRNG, so every run generates the same fleet. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HUMANS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"];
const AGENTS = Array.from({ length: 28 }, (_, i) => `agent-${["etl", "support", "deploy", "triage"][i % 4]}-${i}`);
export const USERS = [...HUMANS, ...AGENTS];
const SEGMENTS = ["eu-prod", "us-prod", "ap-prod", "staging", "local"];
const CONNECTIONS = [
  { name: "pg-orders", type: "postgres", weight: 5 },
  { name: "pg-billing", type: "postgres", weight: 3 },
  { name: "pg-analytics", type: "postgres", weight: 2 },
  { name: "ssh-bastion", type: "ssh", weight: 2 },
  { name: "ssh-workers", type: "ssh", weight: 1 },
  { name: "k8s-api", type: "kubernetes", weight: 1 },
  { name: "http-admin", type: "http", weight: 1 },
] as const;
/** Words that command texts are made of: what searches look for. */
export const TABLES = [
  "orders",
  "order_items",
  "customers",
  "invoices",
  "payments",
  "refunds",
  "subscriptions",
  "plans",
  "users",
  "accounts",
  "sessions",
  "audit_log",
  "shipments",
  "warehouses",
  "products",
  "prices",
  "coupons",
  "carts",
  "tickets",
  "messages",
  "events",
  "ledger",
  "payouts",
  "disputes",
  "tax_rates",
  "addresses",
  "api_keys",
  "webhooks",
  "jobs",
  "feature_flags",
];
const COLUMNS = [
  "id",
  "status",
  "total",
  "created_at",
  "updated_at",
  "customer_id",
  "email",
  "amount",
  "currency",
  "plan_id",
];
const SERVICES = ["api", "worker", "billing", "nginx", "postgresql", "scheduler", "search", "gateway"];
const NAMESPACES = ["payments", "orders", "default", "search", "monitoring", "ingress"];

export const DAY_US = 86_400_000_000n;
/** The generated fleet's recordings cover the 30 days before this instant. */
export const END_US = BigInt(Date.UTC(2026, 0, 31)) * 1000n;
export const SPAN_US = 30n * DAY_US;

/** Generates sessions deterministically; `next()` yields one session's events. */
export class FleetGenerator {
  private readonly rnd: () => number;

  constructor(seed = 42) {
    this.rnd = prng(seed);
  }

  private int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** One session of ~`events` events (100 on average). */
  next(events = 60 + this.int(81)): RecordingEvent[] {
    const id = randomUUID();
    const conn = this.pickConnection();
    const user = this.pick(USERS);
    let t = END_US - SPAN_US + BigInt(Math.floor(this.rnd() * Number(SPAN_US)));
    const out: RecordingEvent[] = [];
    const hashes = randomBytes(32 * (events + 8));
    const push = (body: EventBody) => {
      t += BigInt(20_000 + this.int(20_000_000));
      out.push({
        version: 1,
        sessionId: id,
        seq: BigInt(out.length),
        timeUs: t,
        prevHash: Buffer.alloc(0),
        hash: hashes.subarray(out.length * 32, out.length * 32 + 32),
        signature: Buffer.alloc(0),
        body,
      });
    };
    push({
      $case: "sessionStart",
      value: {
        connection: conn.name,
        connectionType: conn.type,
        segment: this.pick(SEGMENTS),
        relayId: `relay-${this.int(12)}`,
        hubId: `hub-${this.int(3)}`,
        user,
        groups: user.startsWith("agent") ? ["agents", `team-${this.int(6)}`] : ["engineers", "dba"],
        clientAddress: `10.${this.int(256)}.${this.int(256)}.${this.int(256)}:${30000 + this.int(30000)}`,
        params:
          conn.type === "postgres"
            ? [
                { key: "database", value: conn.name.slice(3) },
                { key: "application_name", value: this.pick(["psql", "pgcli", "vigil-agent", "dbt"]) },
              ]
            : conn.type === "ssh"
              ? [{ key: "user", value: this.pick(["deploy", "ubuntu", "root"]) }]
              : [],
        target: `${conn.name}.internal:${conn.type === "postgres" ? 5432 : conn.type === "ssh" ? 22 : 443}`,
      },
    });
    let command = 0;
    while (out.length < events - 1) {
      command++;
      const text = this.commandText(conn.type);
      const roll = this.rnd();
      const decision =
        roll < 0.03 ? Decision.DECISION_DENY : roll < 0.08 ? Decision.DECISION_REVIEW : Decision.DECISION_ALLOW;
      push({
        $case: "command",
        value: {
          command,
          text,
          source: conn.type === "postgres" ? "sql" : conn.type === "ssh" ? "shell" : "http",
          kinds: [text.split(" ")[0]!.toLowerCase()],
          tablesRead: conn.type === "postgres" ? [this.pick(TABLES)] : [],
          tablesWritten: [],
          params: [],
          decision,
          rule:
            decision === Decision.DECISION_DENY
              ? "no-destructive"
              : decision === Decision.DECISION_REVIEW
                ? "review-writes"
                : "",
          reason: decision === Decision.DECISION_DENY ? "destructive statements are refused in production" : "",
        },
      });
      if (decision === Decision.DECISION_REVIEW) {
        const approvalId = randomBytes(8).toString("hex");
        push({ $case: "approval", value: { command, approvalId, status: "pending", decisions: [], message: "" } });
        push({
          $case: "approval",
          value: {
            command,
            approvalId,
            status: "approved",
            decisions: [
              { by: this.pick(HUMANS), verdict: "approve", reason: "", at: new Date(Number(t / 1000n)).toISOString() },
            ],
            message: "",
          },
        });
      }
      if (conn.type === "ssh" && decision !== Decision.DECISION_DENY) {
        push({ $case: "output", value: { command, stream: Stream.STREAM_OUTPUT, data: this.outputText() } });
      }
      push({ $case: "result", value: this.result(command, conn.type, decision) });
    }
    const end = out.length;
    push({ $case: "sessionEnd", value: { error: "", commands: command } });
    out[end]!.signature = randomBytes(64);
    return out;
  }

  private pickConnection(): (typeof CONNECTIONS)[number] {
    const total = CONNECTIONS.reduce((n, c) => n + c.weight, 0);
    let r = this.int(total);
    for (const c of CONNECTIONS) if ((r -= c.weight) < 0) return c;
    return CONNECTIONS[0];
  }

  private commandText(type: string): string {
    const t = this.pick(TABLES);
    const c = this.pick(COLUMNS);
    const id = this.int(1_000_000);
    switch (type) {
      case "postgres":
        return this.pick([
          () => `SELECT ${c}, status, total FROM ${t} WHERE customer_id = ${id} ORDER BY created_at DESC LIMIT 50`,
          () => `SELECT count(*) FROM ${t} WHERE created_at > now() - interval '${1 + this.int(30)} days'`,
          () => `SELECT * FROM ${t} WHERE id = ${id}`,
          () => `UPDATE ${t} SET status = '${this.pick(["paid", "void", "shipped", "open"])}' WHERE id = ${id}`,
          () => `INSERT INTO ${t} (${c}, created_at) VALUES ($1, now())`,
          () => `DELETE FROM ${t} WHERE ${c} < now() - interval '90 days'`,
          () => `SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.${c} = ${id}`,
          () => `EXPLAIN ANALYZE SELECT * FROM ${t} WHERE ${c} = ${id}`,
          () => (this.rnd() < 0.5 ? "BEGIN" : "COMMIT"),
          () => `DROP TABLE tmp_${t}_${id % 1000}`,
        ])();
      case "ssh":
        return this.pick([
          () => `tail -n ${100 * (1 + this.int(5))} /var/log/${this.pick(SERVICES)}/current.log`,
          () => `systemctl status ${this.pick(SERVICES)}`,
          () => `grep -r "timeout" /etc/${this.pick(SERVICES)}`,
          () => `ls -la /var/lib/${this.pick(SERVICES)}`,
          () => `df -h`,
          () => `sudo journalctl -u ${this.pick(SERVICES)} --since "1 hour ago"`,
          () => `rm -rf /tmp/build-${id}`,
          () => `psql -c "select count(*) from ${t}"`,
        ])();
      default:
        return this.pick([
          () => `GET /api/v1/namespaces/${this.pick(NAMESPACES)}/pods`,
          () => `GET /apis/apps/v1/namespaces/${this.pick(NAMESPACES)}/deployments/${this.pick(SERVICES)}`,
          () => `DELETE /api/v1/namespaces/${this.pick(NAMESPACES)}/pods/${this.pick(SERVICES)}-${id.toString(36)}`,
          () => `PATCH /apis/apps/v1/namespaces/${this.pick(NAMESPACES)}/deployments/${this.pick(SERVICES)}/scale`,
          () => `GET /admin/${t}/${id}`,
        ])();
    }
  }

  private outputText(): string {
    const lines = 1 + this.int(4);
    return Array.from(
      { length: lines },
      () =>
        `2026-01-${String(1 + this.int(30)).padStart(2, "0")}T${String(this.int(24)).padStart(2, "0")}:${String(this.int(60)).padStart(2, "0")}:00Z ` +
        `${this.pick(["INFO", "INFO", "WARN", "ERROR"])} ${this.pick(SERVICES)}[${this.int(9999)}]: ${this.pick(["request done", "retrying", "connection reset", "job finished"])} id=${this.int(1e6)}\n`,
    ).join("");
  }

  private result(command: number, type: string, decision: Decision): Extract<EventBody, { $case: "result" }>["value"] {
    const base = {
      command,
      tag: "",
      rows: 0n,
      bytes: 0n,
      durationUs: BigInt(200 + this.int(50_000)),
      digest: "",
      columns: [] as string[],
      sample: [] as { values: Value[] }[],
      exitStatus: undefined as number | undefined,
      exitSignal: undefined,
      error: undefined as { code: string; message: string } | undefined,
    };
    if (decision === Decision.DECISION_DENY) {
      return { ...base, durationUs: 0n, error: { code: "42501", message: "refused by Vigil: rule no-destructive" } };
    }
    if (type === "postgres") {
      const rows = this.int(40);
      return {
        ...base,
        tag: `SELECT ${rows}`,
        rows: BigInt(rows),
        bytes: BigInt(rows * 80),
        digest: randomBytes(32).toString("hex"),
        columns: ["id", "status", "total"],
        sample: Array.from({ length: Math.min(rows, 3) }, () => ({
          values: [
            { text: String(this.int(1e6)) },
            { text: this.pick(["paid", "open", "void"]) },
            { text: (this.rnd() * 500).toFixed(2) },
          ],
        })),
      };
    }
    if (type === "ssh") return { ...base, exitStatus: this.rnd() < 0.9 ? 0 : 1, bytes: BigInt(this.int(4000)) };
    return {
      ...base,
      tag: this.pick(["200 OK", "200 OK", "201 Created", "404 Not Found", "403 Forbidden"]),
      bytes: BigInt(this.int(20000)),
    };
  }
}
