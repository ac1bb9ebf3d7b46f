// PostgreSQL through Vigil — client → hub front door (TLS, token as password) → relay engine (every
// statement parsed and judged, results masked, the session recorded) → PostgreSQL — against the same
// PostgreSQL direct, in the same run. Two `vigil up` processes: one with a team policy (deny rules,
// one masked column), one with the shipped policies/default.yaml (detectors over every value). Two
// reference paths put the ratios in context: PostgreSQL's own TLS, and bench/byte-proxy.ts (a Node
// proxy that only moves bytes, TLS from the client): the floor of any proxy in Node on this machine.
// VIGIL_BENCH_CPU_PROF=<dir> writes V8 CPU profiles of both (phase start times go to stderr, on the same
// monotonic clock, to cut a profile by phase); VIGIL_BENCH_ROUNDS and VIGIL_BENCH_SECONDS shorten a trial.
import { spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { BenchResult, BenchRow } from "./run.js";
import { createToken, type HubHandle } from "../test/support/mesh.js";
import { freePort, run as runCommand, startPostgres, type PostgresHandle } from "../test/support/services.js";
import { api, REPO, sleep, VigilProcess, Workdir } from "../test/support/vigil.js";
import { selfSignedCert } from "../lib/tls/self-signed.js";

const ROUNDS = Number(process.env.VIGIL_BENCH_ROUNDS ?? 3);
const PGBENCH_SECONDS = Number(process.env.VIGIL_BENCH_SECONDS ?? 10);
const PGBENCH_SCALE = 10;
const PGBENCH_CLIENTS = 8;
const PGBENCH_THREADS = 2;
const LATENCY_QUERIES = 5000;
const LATENCY_WARMUP = 500;
const WIDE_ROWS = 1_000_000;
const WIDE_QUERY = "SELECT * FROM wide";
const DATABASE = "vigil_bench";
const CONNECTION = "pg-bench";
/** When set, each `vigil up` writes V8 CPU profiles under <dir>/<team|default>/ (the numbers then include the profiler). */
const CPU_PROFILE_DIR = process.env.VIGIL_BENCH_CPU_PROF;

/** A team policy: the connect grant, the deny rules every team starts from, one column masked live. */
export const TEAM_POLICY = `policies:
  - name: bench-agents
    description: Agents may use the benchmark database; destructive statements are refused.
    match: { groups: [agents] }
    connect: true
    rules:
      - { name: no-drop-table, effect: deny, sql: { statements: [drop_table] } }
      - { name: no-truncate, effect: deny, sql: { statements: [truncate] } }
      - { name: no-unbounded-delete, effect: deny, sql: { statements: [delete], where: absent } }
      - { name: mask-c3, effect: mask, mask: { columns: [c3], apply: live } }
`;

/** policies/default.yaml grants connect to vigil-admins only: agents need their own grant. */
const CONNECT_POLICY = `policies:
  - name: bench-agents
    match: { groups: [agents] }
    connect: true
`;

/** Ten columns of the usual types; c3 (an md5) is the one the team policy masks. */
const WIDE_TABLE = `CREATE TABLE wide AS SELECT
  g AS c1, g::bigint * 7 AS c2, md5(g::text) AS c3, (g % 100000)::numeric(12,2) / 7 AS c4,
  timestamptz '2024-01-01' + g * interval '1 second' AS c5, g % 3 = 0 AS c6, 'customer ' || g AS c7,
  date '2020-01-01' + g % 2000 AS c8, g / 3.0::float8 AS c9,
  (ARRAY['active','closed','pending'])[1 + g % 3]::varchar(16) AS c10
FROM generate_series(1, ${WIDE_ROWS}) g`;

/**
 * Where a client connects: PostgreSQL itself (without and with TLS), the byte proxy, or a `vigil up`
 * front door with one policy.
 */
interface Endpoint {
  key: "direct" | "direct-tls" | "bytes" | "team" | "default";
  host: string;
  port: number;
  user: string;
  password: string;
  ssl: boolean;
  vigil?: VigilProcess;
  /** The byte proxy's process, whose CPU per transaction is counted like vigil's. */
  proxy?: VigilProcess;
  dataDir?: string;
  /** The hub's REST API and its admin token (to see the session recorded). */
  api?: string;
  adminToken?: string;
}

/** libpq settings in the environment, so no password is ever on a command line. */
function libpqEnv(e: Endpoint): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: e.host,
    PGPORT: String(e.port),
    PGUSER: e.user,
    PGPASSWORD: e.password,
    PGDATABASE: DATABASE,
    PGSSLMODE: e.ssl ? "require" : "disable",
    PGCONNECT_TIMEOUT: "10",
  };
}

function pgClient(e: Endpoint, database = DATABASE): pg.Client {
  return new pg.Client({
    host: e.host,
    port: e.port,
    user: e.user,
    password: e.password,
    database,
    ssl: e.ssl ? { rejectUnauthorized: false } : false,
  });
}

async function setUp(server: PostgresHandle): Promise<void> {
  const direct = directEndpoint(server);
  const admin = pgClient(direct, "postgres");
  await admin.connect();
  await admin.query(`CREATE DATABASE ${DATABASE}`);
  await admin.end();
  const init = await runCommand("pgbench", ["-i", "-q", "-s", String(PGBENCH_SCALE)], {
    env: libpqEnv(direct),
    timeoutMs: 600_000,
  });
  if (init.code !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
  const db = pgClient(direct);
  await db.connect();
  await db.query(WIDE_TABLE);
  await db.query("VACUUM ANALYZE");
  await db.end();
}

/** bench/byte-proxy.ts in a process of its own, TLS from the client with the given certificate. */
async function startByteProxy(server: PostgresHandle, tls: { cert: string; key: string }): Promise<Endpoint> {
  const port = await freePort();
  const args = ["--import", "tsx", join(REPO, "bench/byte-proxy.ts"), String(port), server.host, String(server.port)];
  const child = spawn(process.execPath, [...args, tls.cert, tls.key], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  const proxy = new VigilProcess(child, "byte proxy");
  await proxy.waitFor(/listening/, 30_000);
  return { ...directEndpoint(server), key: "bytes", host: "127.0.0.1", port, ssl: true, proxy };
}

function directEndpoint(server: PostgresHandle): Endpoint {
  return {
    key: "direct",
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    ssl: false,
  };
}

/** `vigil up` (hub and relay in one process) with one postgres connection and the given policy files. */
async function startVigil(
  dir: Workdir,
  key: "team" | "default",
  policies: Record<string, string>,
  server: PostgresHandle,
): Promise<Endpoint> {
  const policyDir = dir.file(`${key}-policies`);
  mkdirSync(policyDir);
  for (const [name, text] of Object.entries(policies)) {
    if (text.startsWith("file:")) copyFileSync(join(REPO, text.slice(5)), join(policyDir, name));
    else writeFileSync(join(policyDir, name), text);
  }
  const [apiPort, grpcPort, pgPort] = [await freePort(), await freePort(), await freePort()];
  const dataDir = dir.file(`${key}-data`);
  const config = dir.writeConfig(`${key}.yaml`, {
    listen: {
      api: `127.0.0.1:${apiPort}`,
      grpc: `127.0.0.1:${grpcPort}`,
      postgres: `127.0.0.1:${pgPort}`,
      ssh: `127.0.0.1:${await freePort()}`,
    },
    storage: { embedded: { path: dataDir } },
    policies: [join(policyDir, "*.yaml")],
    log: { level: "warn" },
    relay: {
      hub: `127.0.0.1:${grpcPort}`,
      connections: [
        {
          name: CONNECTION,
          type: "postgres",
          target: `${server.host}:${server.port}`,
          credentials: { user: server.user, password: server.password, sslmode: "disable" },
        },
      ],
    },
  });
  // Node refuses --cpu-prof in NODE_OPTIONS: the flags go on the command line, one directory per process
  // because each thread (tsx's loader runs in one) writes its own profile.
  const profile = CPU_PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${join(CPU_PROFILE_DIR, key)}`] : [];
  const child = spawn(process.execPath, [...profile, join(REPO, "bin/vigil.js"), "up", "--config", config], {
    cwd: REPO,
    env: { ...process.env, VIGIL_TOKEN: undefined, VIGIL_HUB: undefined },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const vigil = new VigilProcess(child, `vigil up (${key})`);
  await vigil.waitFor(/Connect:/, 60_000);
  const admin = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  const hub = { api: `http://127.0.0.1:${apiPort}` } as HubHandle;
  const token = await createToken(hub, admin, "bench-agent", ["agents"]);
  return {
    key,
    host: "127.0.0.1",
    port: pgPort,
    user: CONNECTION,
    password: token,
    ssl: true,
    vigil,
    dataDir,
    api: hub.api,
    adminToken: admin,
  };
}

/** Proves the path does what it claims before it is timed: policy refuses, masks apply, recording writes. */
async function checkPolicyIsLive(e: Endpoint): Promise<void> {
  const c = pgClient(e);
  await c.connect();
  try {
    const refused = await c.query("TRUNCATE pgbench_history").then(
      () => undefined,
      (err: { code?: string }) => err.code,
    );
    if (refused !== "42501") throw new Error(`${e.key}: TRUNCATE was not refused (${refused})`);
    if (e.key === "team") {
      const { rows } = await c.query<{ c3: string }>("SELECT c3 FROM wide WHERE c1 = 1");
      if (rows[0]?.c3 === "c4ca4238a0b923820dcc509a6f75849b") throw new Error("team: c3 is not masked");
    } else {
      const { rows } = await c.query<{ e: string }>("SELECT 'ann@example.com' AS e");
      if (rows[0]?.e === "ann@example.com") throw new Error("default: the email detector did not mask");
    }
  } finally {
    await c.end();
  }
  // `vigil up` stores recordings in its embedded ClickHouse: the ended session must be searchable there.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = await api(e.api!, `/api/v1/sessions?connection=${CONNECTION}`, e.adminToken);
    const sessions = (found.body.sessions ?? []) as unknown[];
    if (found.status === 200 && sessions.length > 0) break;
    if (Date.now() > deadline) throw new Error(`${e.key}: nothing was recorded (${found.status})`);
    await sleep(250);
  }
}

/** What the speed work for these targets changed, and what the profiles say is left (kept with the results). */
const SPEED_NOTES = [
  "What changed since the first measurement (commit b69b1f5: pgbench 0.13× / 0.08×, +0.43 ms p50, +2.15 ms " +
    "p99, 1M rows 1.57×, 5.22× with policies/default.yaml): under `vigil up` the hub and its relay talk through " +
    "an in-memory call instead of a gRPC Tunnel stream over loopback (the largest cost in the first profile); " +
    "statements that differ only in integer literals share one parse (pgbench -S sends a new text every time); " +
    "the recorder hashes each event with one reused writer and one digest, builds its JSON lines when it writes " +
    "a batch, and has one flush timer for all sessions; one-row results are digested in one call; masking " +
    "judges each cell inside the DataRow with a one-pass byte precheck (start characters, anchor pairs, " +
    "digit-group shapes) and decodes only cells that might match.",
  "Since commit ba6b438 (0.25× / 0.17×, +6.1 ms p99, 1M rows 1.54×): a per-thread CPU count of the vigil " +
    "process under pgbench -S showed chDB's own threads (merges, insert pipelines) using 100–150 µs per " +
    "transaction, about as much as the data path on the main thread, at the same priority as the data path, " +
    "PostgreSQL and pgbench. Under `vigil up` they now run at nice 10 while the recording queue is short " +
    "(normal priority again once 40k events wait, until it is under 10k; docs/recording.md), so they use " +
    "the CPU the data path leaves: paired runs (two vigil up against one PostgreSQL, alternating) gave " +
    "1632 → 3430 tps simple and 1621 → 2533 prepared. This stores a burst a little later; it does not " +
    "store it with less CPU. Also: a RowDescription the target repeats is decoded once per session, with " +
    "its row maskers, and a column masked by redaction gets its placeholder without decoding the value " +
    "(once per row of the 1M-row select). --max-semi-space-size=64 lowered vigil's CPU per transaction in " +
    "six paired runs of six, but a full run of this benchmark with it did not differ from the run above " +
    "beyond the spread: not adopted.",
  "Since commit cc5f61e (0.14× / 0.10×, +0.21 ms p50, +2.34 ms p99, 1M rows 1.50×): probes of the latency " +
    "phase inside the vigil process (an event-loop delay histogram, a 2 ms timer logging each stall, GC " +
    "entries and the start and synchronous part of each recording insert, matched with the client's time of " +
    "every slow query) showed each insert of the local sink building its batch (proto3 JSON lines, session " +
    "rows) synchronously on the main thread: ~1 ms per ~100 events (up to 8 ms), overlapping a fifth to a " +
    "third of the queries above 2 ms. Scavenges (1–2 ms, 7–8 per 5000 queries) overlapped a few more; in most " +
    "other stalls a CPU profile had no sample at all, i.e. the main thread was not running (other processes " +
    "on the 2 vCPUs). The sink now only appends each event's protobuf (the bytes the hash chain already " +
    "encoded) to the batch, and a worker thread decodes it, builds the rows and calls chDB on its own session " +
    "on the same data dir; inserts go every 250 ms instead of 20 (one busy session made 50 parts a second for " +
    "chDB to merge). Paired runs (the previous and the new vigil up against one PostgreSQL, alternating, load " +
    "5–14): main-thread CPU per pgbench -S transaction 103–200 µs before, 127–182 µs after; scavenges in the " +
    "latency phase 7–8 before, 4–5 after; SELECT 1 p99 2.7–14 ms before, 1.6–9 ms after, moving with the " +
    "machine's load more than with the version.",
  "Since commit 9afe506 (0.17× / 0.11×, +0.10 ms p50, +0.94 ms p99, 1M rows 1.67×; Vigil CPU 231–331 µs per " +
    "pgbench transaction, 2.26–2.69 s for the 1M-row select): each pgbench -S statement records two events " +
    "(command and result, ~220 bytes each as protobuf). Storing them was measured apart from the data path " +
    "(bench/store-probe.ts: the local sink's batches at pgbench's rate, 12,000 events/s, CPU of every thread): " +
    "each chDB insert costs a fixed ~25 ms of CPU whatever its size (the events part with its text index ~18 ms, " +
    "the session summaries ~7 ms), so with an insert every 250 ms storing cost 44 µs per event, and 26–28 µs " +
    "with one a second (2 s was no cheaper). `vigil up`'s local sink now inserts once a second (at most 20,000 " +
    "events; a session's end still at once). Of those 26–28 µs: rows built on the insert thread ~7, chDB's " +
    "insert (parsing, sorting, compression, text index) ~10 on the calling thread and ~7 in its pool, merges " +
    "4–9, growing with the table. 1M-row select: the row masker wrote each masked row with Buffer.copy of " +
    "partial ranges (a view per segment) and an edit object per value; it now copies the row once and moves " +
    "what follows a replaced value with copyWithin: main-thread CPU for the select 1.22–1.34 s before, " +
    "1.06–1.21 s after (paired runs against one PostgreSQL). Tried, not adopted: the body at ZSTD(3) instead " +
    "of 9, and no text index (no difference with 1 s batches); merge_selector_base = 20 cut merge CPU from 9.1 " +
    "to 3.8 µs per event in a 40 s probe, but leaves more parts for searches to read and is marked " +
    "experimental, so it needs a recording-store run first.",
  "Since commit bfb713f (0.21× / 0.16×, +0.17 ms p50, +1.96 ms p99, 1M rows 1.61×; Vigil CPU 1.70–2.19 s for " +
    "the 1M-row select): a V8 profile of the select showed the relay's result path framing, allocating and " +
    "copying per row (a view and an object per DataRow from the reader, a view of its body, a new buffer per " +
    "masked row, the digest's list of row views and their join, the join of each chunk's rows): views, " +
    "allocations, copies and GC cost more of the main thread than the masking itself. The relay now handles " +
    "a result's DataRows a run per received chunk: the rows lying whole in one socket read are counted, " +
    "digested (copied once, headers squeezed out in place, one hash update) and passed on as one slice of the " +
    "chunk or, when live masks rewrite values, as one buffer the masker compacts in place (one copy of the " +
    "run, copyWithin per stretch of unchanged bytes, the replacements written between; no copy at all when " +
    "nothing in the run changes); a row's walk stops after the last column a mask applies to; a large answer " +
    "goes to the tunnel as its parts instead of being joined first. The first 5 rows of a result still go one " +
    "by one (the recorded sample), and the digest keeps its value (SHA-256 over the DataRow bodies in order; " +
    "an end-to-end test of 40,000 rows, masked live and not, compares it with one computed from the target's " +
    "rows). bench/pg-probe.ts, checkouts taking turns against one PostgreSQL (load 4.1–4.6): vigil " +
    "main-thread CPU for the select 1.07–1.46 s before, 0.66–0.89 s after. Where the select's relay CPU goes " +
    "now (V8 profile and perf of that window, before the last two of those changes): the TLS write to psql " +
    "(encryption and the loopback send) about a third, the masker's row walk and moves about a third, " +
    "SHA-256 of the digest about a sixth. With policies/default.yaml every text value of every row is " +
    "scanned by the detectors' precheck (all ten columns are text in psql's results, and float and timestamp " +
    "values have digit runs the card and phone shapes must look at): that, not the framing, is most of its " +
    "select's CPU.",
  "Since commit f30a08b (0.15× / 0.13×, +0.23 ms p50, +3.07 ms p99, 1M rows 0.97×): `vigil up`'s local sink " +
    "inserted again as soon as an insert finished, so under steady load its inserts ran back to back (several " +
    "a second, each a part for chDB to merge) instead of once a second; it now waits out the batch window " +
    "unless the batch is full, behind or flushed by a session's end. bench/pg-probe.ts, paired runs against " +
    "one PostgreSQL: merge CPU per pgbench -S transaction 34–53 µs before, 5–22 after; vigil's CPU per " +
    "transaction 169–197 µs before, 131–155 after. The main thread's work per statement lost allocations and " +
    "hops: the in-memory tunnel no longer queues an empty tick per chunk each way, an answer passed on " +
    "unchanged goes out as one slice, command and result events are encoded for the hash chain into one " +
    "reused buffer (byte for byte what the generated encoder writes; a test compares them), hashes and " +
    "encodings come from Node's buffer pool, and closures, spreads and iterator objects per row, rule and " +
    "event became plain loops and literals. Paired pg-probe runs (load 1.4–3.0): main-thread CPU per " +
    "transaction, medians, 104–120 µs before and 73–97 after (simple), 77–114 and 74–98 (prepared); " +
    "allocation per transaction 10.7 KB before, 8.25 KB after.",
  "What is left (perf of the main thread under pgbench -S simple, after those changes): the kernel about " +
    "36% (half of it waking the peer inside each socket write, as a loopback write runs the receiver's TCP " +
    "path), V8's builtins and runtime about 29%, malloc about 8% (much of it a new buffer per socket read), " +
    "TLS about 6%; Vigil's own JavaScript is spread thin, the recording (two encodes, the chain's hashes, " +
    "the result digest) its largest part at about 15%. The other threads (the insert thread, chDB's pools " +
    "and merges, V8's helpers) add 40–60 µs per transaction. The reference rows say how far the throughput " +
    "targets are from what this machine allows any proxy in Node: the byte proxy, which does nothing but TLS " +
    "and piping in a process of its own, stays below 0.5× direct, and Vigil's path, which also parses, " +
    "judges, masks and records every statement, reaches a bit over half of the byte proxy's rate. Every " +
    "extra process on the path is another wakeup on the 2 shared vCPUs, which is also why one client's " +
    "latency through the byte proxy moves between +0.2 and +0.45 ms from run to run. The 1M-row select costs " +
    "the relay about 1 µs of CPU per row (TLS, masking, the row digest), CPU the 2 vCPUs must find next to " +
    "PostgreSQL's and psql's, so its ratio moves with the machine's load; p99 is dominated by scheduling on " +
    "the loaded VM (direct p99 itself moves between 0.07 and 4.5 ms from run to run).",
];

// ---- measurements ----

interface PgbenchRun {
  tps: number;
  latencyMs: number;
  /** CPU time (all threads) the vigil process (or the byte proxy) spent per transaction, in µs. */
  vigilCpuUs?: number;
}

/** User + system CPU seconds of a process so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function pgbench(e: Endpoint, mode: "simple" | "prepared"): Promise<PgbenchRun> {
  const args = ["-n", "-S", "-M", mode, "-c", String(PGBENCH_CLIENTS), "-j", String(PGBENCH_THREADS)];
  const pid = (e.vigil ?? e.proxy)?.pid;
  const cpu0 = pid !== undefined ? cpuSeconds(pid) : 0;
  const r = await runCommand("pgbench", [...args, "-T", String(PGBENCH_SECONDS)], {
    env: libpqEnv(e),
    timeoutMs: (PGBENCH_SECONDS + 60) * 1000,
  });
  const cpu = pid !== undefined ? cpuSeconds(pid) - cpu0 : 0;
  const processed = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !tps || !latency || !processed || (failed && failed[1] !== "0")) {
    throw new Error(`pgbench ${mode} (${e.key}) failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return {
    tps: Number(tps[1]),
    latencyMs: Number(latency[1]),
    ...(pid !== undefined ? { vigilCpuUs: (cpu / Number(processed[1])) * 1e6 } : {}),
  };
}

/** One client, sequential `SELECT 1` (simple protocol); sorted round-trip times in ms. */
async function selectOneLatencies(e: Endpoint): Promise<number[]> {
  const c = pgClient(e);
  await c.connect();
  const out: number[] = [];
  try {
    for (let i = 0; i < LATENCY_QUERIES + LATENCY_WARMUP; i++) {
      const t0 = process.hrtime.bigint();
      await c.query("SELECT 1");
      if (i >= LATENCY_WARMUP) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    await c.end();
  }
  return out.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

function rssKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]);
}

interface WideRun {
  seconds: number;
  /** Highest VmRSS of the vigil process sampled while the query ran (MiB). */
  peakRssMiB?: number;
  /** CPU time (all threads) the vigil process spent on the query, in seconds. */
  vigilCpuS?: number;
}

/** psql fetching every row of the wide table, its output to /dev/null; wall time. */
async function wideSelect(e: Endpoint): Promise<WideRun> {
  const devNull = openSync("/dev/null", "w");
  const pid = e.vigil?.pid;
  let peak = 0;
  const sample = () => pid !== undefined && (peak = Math.max(peak, rssKiB(pid, "VmRSS")));
  const sampler = setInterval(sample, 20);
  const cpu0 = pid !== undefined ? cpuSeconds(pid) : 0;
  try {
    const t0 = process.hrtime.bigint();
    const child = spawn("psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", WIDE_QUERY], {
      env: libpqEnv(e),
      stdio: ["ignore", devNull, "pipe"],
    });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", resolve);
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (code !== 0) throw new Error(`psql ${WIDE_QUERY} (${e.key}) exited ${code}: ${stderr}`);
    sample();
    return {
      seconds,
      ...(pid !== undefined ? { peakRssMiB: peak / 1024, vigilCpuS: cpuSeconds(pid) - cpu0 } : {}),
    };
  } finally {
    clearInterval(sampler);
    closeSync(devNull);
  }
}

// ---- rounds and report ----

interface Runs {
  simple: PgbenchRun[];
  prepared: PgbenchRun[];
  p50: number[];
  p99: number[];
  wide: WideRun[];
  /** The vigil process's VmHWM right after round 1's 1M-row select, its first heavy work (MiB). */
  hwmAfterWide?: number;
}

const emptyRuns = (): Runs => ({ simple: [], prepared: [], p50: [], p99: [], wide: [] });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Every round measures each endpoint in turn, one measurement at a time, so they see the same machine. */
async function measureRounds(endpoints: Endpoint[]): Promise<Map<Endpoint["key"], Runs>> {
  const runs = new Map(endpoints.map((e) => [e.key, emptyRuns()]));
  let order = endpoints;
  const each = async (phase: string, f: (e: Endpoint, r: Runs) => Promise<void>) => {
    for (const e of order) {
      // With profiling on, phase boundaries on the monotonic clock V8's profiles use, to cut them by phase.
      if (CPU_PROFILE_DIR) console.error(`phase ${phase} ${e.key} at ${process.hrtime.bigint() / 1000n} µs`);
      await f(e, runs.get(e.key)!);
    }
  };
  for (let round = 1; round <= ROUNDS; round++) {
    console.error(`postgres bench: round ${round} of ${ROUNDS}`);
    // Who goes first turns each round, so no path always follows the heaviest one.
    order = endpoints.map((_, i) => endpoints[(i + round - 1) % endpoints.length]!);
    // The 1M-row select first, so each vigil's VmHWM after round 1 is the peak of that test alone.
    await each("wide", async (e, r) => {
      r.wide.push(await wideSelect(e));
      if (round === 1 && e.vigil) r.hwmAfterWide = rssKiB(e.vigil.pid, "VmHWM") / 1024;
    });
    await each("latency", async (e, r) => {
      const lat = await selectOneLatencies(e);
      r.p50.push(pct(lat, 50));
      r.p99.push(pct(lat, 99));
    });
    await each("simple", async (e, r) => void r.simple.push(await pgbench(e, "simple")));
    await each("prepared", async (e, r) => void r.prepared.push(await pgbench(e, "prepared")));
  }
  return runs;
}

const fmt = (n: number, digits = 3) => n.toFixed(digits);
const list = (xs: number[], digits: number) => xs.map((x) => fmt(x, digits)).join(", ");

/**
 * The five measurements of a path next to direct (medians of the rounds), each with Vigil's target
 * for it and whether `via` met it.
 */
function measurements(label: string, direct: Runs, via: Runs): (BenchRow & { target: string })[] {
  const verdict = (ok: boolean) => (ok ? "met" : "missed");
  const row = (
    metric: string,
    pick: (r: Runs) => number[],
    unit: string,
    better: "higher" | "lower",
    target: (d: number, v: number) => string,
  ) => {
    const d = median(pick(direct));
    const v = median(pick(via));
    return { metric: `${label}: ${metric}`, direct: d, vigil: v, unit, ratio: v / d, better, target: target(d, v) };
  };
  return [
    row(
      `pgbench -S simple, ${PGBENCH_CLIENTS} clients`,
      (r) => r.simple.map((x) => x.tps),
      "tps",
      "higher",
      (d, v) => `≥ 0.5× direct: ${verdict(v / d >= 0.5)}`,
    ),
    row(
      `pgbench -S prepared, ${PGBENCH_CLIENTS} clients`,
      (r) => r.prepared.map((x) => x.tps),
      "tps",
      "higher",
      (d, v) => `≥ 0.6× direct: ${verdict(v / d >= 0.6)}`,
    ),
    row(
      "SELECT 1 p50, 1 client",
      (r) => r.p50,
      "ms",
      "lower",
      (d, v) => `added ≤ 0.3 ms: +${fmt(v - d)} ms, ${verdict(v - d <= 0.3)}`,
    ),
    row(
      "SELECT 1 p99, 1 client",
      (r) => r.p99,
      "ms",
      "lower",
      (d, v) => `added ≤ 1.5 ms: +${fmt(v - d)} ms, ${verdict(v - d <= 1.5)}`,
    ),
    row(
      "1M rows × 10 columns, psql",
      (r) => r.wide.map((x) => x.seconds),
      "s",
      "lower",
      (d, v) => `≤ 1.5× direct: ${verdict(v / d <= 1.5)}`,
    ),
  ];
}

/** Vigil's rows: the measurements with their targets, and the process's peak memory. */
function rows(label: string, direct: Runs, via: Runs): BenchRow[] {
  return [
    ...measurements(label, direct, via),
    {
      metric: `${label}: vigil peak RSS (VmHWM) after the 1M-row select`,
      direct: null,
      vigil: via.hwmAfterWide!,
      unit: "MiB",
      ratio: null,
      better: "lower",
    },
  ];
}

/** A reference path next to direct: the same measurements, no targets (they are Vigil's). */
function referenceRows(label: string, direct: Runs, ref: Runs): BenchRow[] {
  return measurements(label, direct, ref).map(({ target: _target, ...row }) => row);
}

/** Every run's numbers, so a reader sees the spread behind each median. */
function runNotes(label: string, direct: Runs, via: Runs): string {
  const both = (d: number[], v: number[], digits: number) => `${list(d, digits)} | ${list(v, digits)}`;
  const tps = (r: PgbenchRun[]) => r.map((x) => x.tps);
  const cpu = (r: PgbenchRun[]) =>
    list(
      r.map((x) => x.vigilCpuUs ?? 0),
      0,
    );
  const seconds = (r: WideRun[]) => r.map((x) => x.seconds);
  return (
    `${label}, every run (direct | Vigil): pgbench simple tps ${both(tps(direct.simple), tps(via.simple), 0)}; ` +
    `prepared tps ${both(tps(direct.prepared), tps(via.prepared), 0)}; ` +
    `SELECT 1 p50 ms ${both(direct.p50, via.p50, 3)}; p99 ms ${both(direct.p99, via.p99, 3)}; ` +
    `1M-row select s ${both(seconds(direct.wide), seconds(via.wide), 2)}. ` +
    `Vigil CPU (all threads) per pgbench transaction: simple ${cpu(via.simple)} µs, prepared ${cpu(via.prepared)} µs; ` +
    `vigil RSS sampled during the 1M-row select: ${list(
      via.wide.map((w) => w.peakRssMiB ?? 0),
      0,
    )} MiB; vigil CPU (all threads) for the 1M-row select: ${list(
      via.wide.map((w) => w.vigilCpuS ?? 0),
      2,
    )} s.`
  );
}

/** A reference path's every run, and the byte proxy's CPU per transaction. */
function referenceNotes(label: string, direct: Runs, ref: Runs): string {
  const both = (d: number[], v: number[], digits: number) => `${list(d, digits)} | ${list(v, digits)}`;
  const tps = (r: PgbenchRun[]) => r.map((x) => x.tps);
  const cpu = (r: PgbenchRun[]) =>
    list(
      r.map((x) => x.vigilCpuUs ?? 0),
      0,
    );
  return (
    `${label}, every run (direct | reference): pgbench simple tps ${both(tps(direct.simple), tps(ref.simple), 0)}; ` +
    `prepared tps ${both(tps(direct.prepared), tps(ref.prepared), 0)}; ` +
    `SELECT 1 p50 ms ${both(direct.p50, ref.p50, 3)}; p99 ms ${both(direct.p99, ref.p99, 3)}; ` +
    `1M-row select s ${both(
      direct.wide.map((x) => x.seconds),
      ref.wide.map((x) => x.seconds),
      2,
    )}.` +
    (ref.simple[0]?.vigilCpuUs !== undefined
      ? ` Proxy CPU per pgbench transaction: simple ${cpu(ref.simple)} µs, prepared ${cpu(ref.prepared)} µs.`
      : "")
  );
}

/** The commit measured, and which of Vigil's own files differed from it (others edit the tree too). */
async function treeState(): Promise<string> {
  const head = await runCommand("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO });
  const dirty = await runCommand("git", ["status", "--porcelain", "--", "hub", "relay-agent", "lib", "cli", "proto"], {
    cwd: REPO,
  });
  const files = dirty.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => l.slice(3));
  return (
    `Commit ${head.stdout.trim() || "?"}` + (files.length ? ` plus uncommitted changes to ${files.join(", ")}` : "")
  );
}

/** Bytes under a vigil's data dir: its embedded recording store, after the rounds. */
function dataBytes(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((n, f) => n + dataBytes(join(path, f)), 0);
}

export async function run(): Promise<BenchResult> {
  const loadAtStart = loadavg()[0] ?? 0;
  const tree = await treeState();
  const dir = new Workdir();
  if (CPU_PROFILE_DIR) mkdirSync(CPU_PROFILE_DIR, { recursive: true });
  // PostgreSQL and the byte proxy speak TLS with one self-signed certificate.
  const tlsDir = dir.file("tls");
  mkdirSync(tlsDir);
  await selfSignedCert(tlsDir, "bench");
  const tls = { cert: join(tlsDir, "bench.pem"), key: join(tlsDir, "bench.key") };
  const server = await startPostgres({ ssl: tls });
  const vigils: Endpoint[] = [];
  let bytes: Endpoint | undefined;
  try {
    console.error(`postgres bench: pgbench -i -s ${PGBENCH_SCALE} and a ${WIDE_ROWS}-row table, direct`);
    await setUp(server);
    vigils.push(await startVigil(dir, "team", { "team.yaml": TEAM_POLICY }, server));
    vigils.push(
      await startVigil(
        dir,
        "default",
        { "default.yaml": "file:policies/default.yaml", "connect.yaml": CONNECT_POLICY },
        server,
      ),
    );
    for (const v of vigils) await checkPolicyIsLive(v);
    const direct = directEndpoint(server);
    const directTls: Endpoint = { ...direct, key: "direct-tls", ssl: true };
    bytes = await startByteProxy(server, tls);
    const idle = Object.fromEntries(vigils.map((v) => [v.key, rssKiB(v.vigil!.pid, "VmHWM") / 1024]));
    const runs = await measureRounds([direct, directTls, bytes, ...vigils]);
    const loadAtEnd = loadavg()[0] ?? 0;
    const hwmAtEnd = Object.fromEntries(vigils.map((v) => [v.key, rssKiB(v.vigil!.pid, "VmHWM") / 1024]));
    const d = runs.get("direct")!;
    const team = runs.get("team")!;
    const dflt = runs.get("default")!;
    const teamLabel = "team policy (deny rules, c3 masked)";
    const defaultLabel = "policies/default.yaml (detectors on every value)";
    const tlsLabel = "reference: PostgreSQL's own TLS (sslmode=require), no proxy";
    const bytesLabel = "reference: a Node proxy that only moves bytes, TLS from the client";
    return {
      name: "postgres",
      title: "PostgreSQL: client → hub front door (TLS) → relay engine → PostgreSQL",
      when: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
      command: "npm run bench -- postgres",
      rows: [
        ...rows(teamLabel, d, team),
        ...rows(defaultLabel, d, dflt),
        ...referenceRows(tlsLabel, d, runs.get("direct-tls")!),
        ...referenceRows(bytesLabel, d, runs.get("bytes")!),
      ],
      notes: [
        `Direct = the same PostgreSQL 15 over TCP without TLS (sslmode=disable). Through Vigil = \`vigil up\` ` +
          "(hub and relay in one process; their tunnel is an in-memory call carrying the same signed frames): TLS " +
          "from the client to the hub (sslmode=require, the token as password), then the relay's engine parses " +
          "every statement (libpg-query, analyses cached per text and per integer-literal shape), evaluates policy, applies masks, and " +
          "records commands and results (digest and a 5-row sample per result) into its embedded store (chDB, in its data dir, " +
          "written from a thread of its own). " +
          "PostgreSQL, pgbench/psql and Vigil share the 2 vCPUs.",
        `Team policy: connect for group agents, deny drop_table / truncate / delete without WHERE, mask column c3 ` +
          "live. Default: policies/default.yaml as shipped (its detectors scan every text value, apply: both) plus " +
          "a connect grant for agents. Before timing, each path is checked: TRUNCATE is refused (42501), the " +
          "mask applies and the session is recorded.",
        `pgbench -n -S -c ${PGBENCH_CLIENTS} -j ${PGBENCH_THREADS} -T ${PGBENCH_SECONDS} at scale ${PGBENCH_SCALE}, ` +
          "initialised directly; tps without initial connection time. Latency: node-postgres, one client, " +
          `${LATENCY_QUERIES} sequential \`SELECT 1\` (simple protocol) after ${LATENCY_WARMUP} warm-up queries. ` +
          `Wide: \`psql -X -A -t -c "${WIDE_QUERY}" > /dev/null\` over a ${WIDE_ROWS}-row, 10-column table ` +
          "(int, bigint, md5 text, numeric, timestamptz, bool, text, date, float8, varchar), wall time.",
        `Each number is the median of ${ROUNDS} rounds; every round measures direct, the two references, team and default in turn ` +
          "(who goes first rotates). " +
          "Ratios are median ÷ median. Peak RSS is the vigil process's VmHWM right after round 1's 1M-row select, " +
          `its first heavy work (after start-up: team ${fmt(idle.team!, 0)} MiB, default ${fmt(idle.default!, 0)} MiB; ` +
          `after all rounds: team ${fmt(hwmAtEnd.team!, 0)} MiB, default ${fmt(hwmAtEnd.default!, 0)} MiB).`,
        "The two reference paths are measured in the same rounds and have no targets; they show what the " +
          "machine allows. PostgreSQL's own TLS: the client speaks TLS to PostgreSQL itself. The byte proxy " +
          "(bench/byte-proxy.ts, a process of its own): answers the SSLRequest, speaks TLS to the client as the " +
          "hub's front door does, and pipes bytes to PostgreSQL over plain TCP; no parsing, policy, masking or " +
          "recording. Its ratio is the floor for any proxy in Node with TLS on this machine (two more socket " +
          "hops, each waking another process on the 2 vCPUs, and TLS in Node): Vigil's path does all of that " +
          "and its own work.",
        runNotes(teamLabel, d, team),
        runNotes(defaultLabel, d, dflt),
        referenceNotes(tlsLabel, d, runs.get("direct-tls")!),
        referenceNotes(bytesLabel, d, runs.get("bytes")!),
        ...SPEED_NOTES,
        `Data dir (embedded recording store) after the rounds: team ${(dataBytes(vigils[0]!.dataDir!) / 1e6).toFixed(1)} MB, ` +
          `default ${(dataBytes(vigils[1]!.dataDir!) / 1e6).toFixed(1)} MB. ${tree}.`,
        `Load average ${loadAtStart.toFixed(1)} at the start, ${loadAtEnd.toFixed(1)} at the end: this 2-vCPU VM is ` +
          "shared with other jobs and swings ±50% between runs, direct included; compare ratios within one run." +
          (CPU_PROFILE_DIR ? " CPU profiler ON for the vigil processes: their numbers are lower than without." : ""),
      ],
    };
  } finally {
    for (const v of vigils) await v.vigil?.stop();
    await bytes?.proxy?.stop();
    await server.stop();
    dir.cleanup();
  }
}
