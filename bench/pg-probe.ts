// Probe (not a benchmark of record): `vigil up`'s CPU per pgbench -S transaction by thread (/proc), for
// one or more checkouts against one PostgreSQL, taking turns, with the team policy of bench/postgres.ts.
// `flock /tmp/vigil-bench.lock node --import tsx bench/pg-probe.ts`. PROBE_REPOS: comma-separated
// checkouts, each optionally `path|NAME=value;NAME=value` (environment for that vigil); PROBE_SECONDS,
// PROBE_ROUNDS, PROBE_CLIENTS (pgbench -c, default 8), PROBE_MODES (simple,prepared; empty for none), PROBE_WIDE=1 (also the 1M-row select),
// PROBE_LATENCY=N (also N sequential `SELECT 1` from one client, direct and through each vigil, p50/p99),
// PROBE_DRAIN (seconds after each run, CPU shown apart), PROBE_TIDS=1 (Node's threads one by one),
// PROBE_PROF=<dir> (V8 CPU profiles), PROBE_PERF=<file prefix> (perf record of each run),
// PROBE_NODE_FLAGS (e.g. "--perf-basic-prof --interpreted-frames-native-stack" for perf's JS names).
import { spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, openSync, closeSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { createToken, type HubHandle } from "../test/support/mesh.js";
import { freePort, run as runCommand, startPostgres, type PostgresHandle } from "../test/support/services.js";
import { sleep, VigilProcess, Workdir } from "../test/support/vigil.js";
import { TEAM_POLICY } from "./postgres.js";

const REPOS = (process.env.PROBE_REPOS ?? process.cwd()).split(",");
const SECONDS = Number(process.env.PROBE_SECONDS ?? 8);
const ROUNDS = Number(process.env.PROBE_ROUNDS ?? 2);
const MODES = (process.env.PROBE_MODES ?? "simple,prepared").split(",").filter(Boolean);
const WIDE = process.env.PROBE_WIDE === "1";
const LATENCY = Number(process.env.PROBE_LATENCY ?? 0);
const DRAIN_S = Number(process.env.PROBE_DRAIN ?? 3);
const CLIENTS = process.env.PROBE_CLIENTS ?? "8";
const PROF = process.env.PROBE_PROF;
const DATABASE = "vigil_bench";

function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
    } catch {
      continue;
    }
    let name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    if (Number(t) === pid) name = "MAIN";
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(f[11]) + Number(f[12])) / 100;
    out.set(`${name}#${t}`, cpu);
  }
  return out;
}

function diffByName(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of b) {
    const name = process.env.PROBE_TIDS && k.startsWith("node#") ? k : k.split("#")[0]!;
    out.set(name, (out.get(name) ?? 0) + v - (a.get(k) ?? 0));
  }
  return out;
}

function procCpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Vigil {
  repo: string;
  proc: VigilProcess;
  port: number;
  token: string;
}

async function startVigil(dir: Workdir, repo: string, i: number, server: PostgresHandle): Promise<Vigil> {
  const policyDir = dir.file(`p${i}`);
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, "team.yaml"), TEAM_POLICY);
  const [apiPort, grpcPort, pgPort] = [await freePort(), await freePort(), await freePort()];
  const config = dir.writeConfig(`v${i}.yaml`, {
    listen: {
      api: `127.0.0.1:${apiPort}`,
      grpc: `127.0.0.1:${grpcPort}`,
      postgres: `127.0.0.1:${pgPort}`,
      ssh: `127.0.0.1:${await freePort()}`,
    },
    storage: { embedded: { path: dir.file(`d${i}`) } },
    policies: [join(policyDir, "*.yaml")],
    log: { level: "warn" },
    relay: {
      hub: `127.0.0.1:${grpcPort}`,
      connections: [
        {
          name: "pg-bench",
          type: "postgres",
          target: `${server.host}:${server.port}`,
          credentials: { user: server.user, password: server.password, sslmode: "disable" },
        },
      ],
    },
  });
  const profile = PROF ? ["--cpu-prof", `--cpu-prof-dir=${join(PROF, String(i))}`] : [];
  if (process.env.PROBE_NODE_FLAGS) profile.push(...process.env.PROBE_NODE_FLAGS.split(" "));
  const [path, extra] = repo.split("|");
  const extraEnv = Object.fromEntries(
    (extra ?? "")
      .split(";")
      .filter(Boolean)
      .map((kv) => kv.split("=")),
  );
  const child = spawn(process.execPath, [...profile, join(path!, "bin/vigil.js"), "up", "--config", config], {
    cwd: path,
    env: { ...process.env, VIGIL_TOKEN: undefined, VIGIL_HUB: undefined, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = new VigilProcess(child, `vigil ${repo}`);
  await proc.waitFor(/Connect:/, 90_000);
  const admin = readFileSync(join(dir.file(`d${i}`), "admin.token"), "utf8").trim();
  const token = await createToken({ api: `http://127.0.0.1:${apiPort}` } as HubHandle, admin, "a", ["agents"]);
  return { repo, proc, port: pgPort, token };
}

const insecureTls = { rejectUnauthorized: false };

/** One client, `n` sequential `SELECT 1` (simple protocol) after 500 warm-up queries; sorted ms. */
async function latencies(config: pg.ClientConfig, n: number): Promise<number[]> {
  const c = new pg.Client({ ...config, database: DATABASE });
  await c.connect();
  const out: number[] = [];
  try {
    for (let i = 0; i < n + 500; i++) {
      const t0 = process.hrtime.bigint();
      await c.query("SELECT 1");
      if (i >= 500) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    await c.end();
  }
  return out.sort((a, b) => a - b);
}

function env(v: Vigil): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: "127.0.0.1",
    PGPORT: String(v.port),
    PGUSER: "pg-bench",
    PGPASSWORD: v.token,
    PGDATABASE: DATABASE,
    PGSSLMODE: "require",
  };
}

async function main(): Promise<void> {
  const dir = new Workdir();
  const server = await startPostgres();
  const vigils: Vigil[] = [];
  try {
    const admin = new pg.Client({ ...server, database: "postgres" });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${DATABASE}`);
    await admin.end();
    const directEnv = {
      ...process.env,
      PGHOST: server.host,
      PGPORT: String(server.port),
      PGUSER: server.user,
      PGPASSWORD: server.password,
      PGDATABASE: DATABASE,
      PGSSLMODE: "disable",
    };
    await runCommand("pgbench", ["-i", "-q", "-s", "10"], { env: directEnv, timeoutMs: 600_000 });
    if (WIDE) {
      const db = new pg.Client({ ...server, database: DATABASE });
      await db.connect();
      await db.query(`CREATE TABLE wide AS SELECT
  g AS c1, g::bigint * 7 AS c2, md5(g::text) AS c3, (g % 100000)::numeric(12,2) / 7 AS c4,
  timestamptz '2024-01-01' + g * interval '1 second' AS c5, g % 3 = 0 AS c6, 'customer ' || g AS c7,
  date '2020-01-01' + g % 2000 AS c8, g / 3.0::float8 AS c9,
  (ARRAY['active','closed','pending'])[1 + g % 3]::varchar(16) AS c10
FROM generate_series(1, 1000000) g`);
      await db.query("VACUUM ANALYZE");
      await db.end();
    }
    for (let i = 0; i < REPOS.length; i++) vigils.push(await startVigil(dir, REPOS[i]!, i, server));
    // warm-up
    for (const v of vigils) {
      await runCommand("pgbench", ["-n", "-S", "-c", "8", "-j", "2", "-T", "3"], { env: env(v), timeoutMs: 60_000 });
    }
    await sleep(DRAIN_S * 1000);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...vigils].reverse() : vigils;
      for (const mode of MODES) {
        for (const v of order) {
          const t0 = threads(v.proc.pid);
          const c0 = procCpu(v.proc.pid);
          const perf = process.env.PROBE_PERF
            ? spawn(
                "perf",
                [
                  "record",
                  "-F",
                  "499",
                  "-e",
                  "cpu-clock",
                  "-g",
                  "-p",
                  String(v.proc.pid),
                  "-o",
                  `${process.env.PROBE_PERF}-${mode}.data`,
                  "--",
                  "sleep",
                  String(SECONDS - 2),
                ],
                { stdio: "ignore" },
              )
            : undefined;
          const perfDone = perf ? new Promise((r) => perf.once("close", r)) : undefined;
          const r = await runCommand(
            "pgbench",
            ["-n", "-S", "-M", mode, "-c", CLIENTS, "-j", "2", "-T", String(SECONDS)],
            {
              env: env(v),
              timeoutMs: (SECONDS + 60) * 1000,
            },
          );
          const t1 = threads(v.proc.pid);
          const c1 = procCpu(v.proc.pid);
          await perfDone;
          await sleep(DRAIN_S * 1000);
          const t2 = threads(v.proc.pid);
          const c2 = procCpu(v.proc.pid);
          const n = Number(/actually processed: (\d+)/.exec(r.stdout)?.[1]);
          const tps = Number(/tps = ([\d.]+) \(without/.exec(r.stdout)?.[1]);
          const per = (s: number) => ((s / n) * 1e6).toFixed(0);
          const during = [...diffByName(t0, t1)].filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
          const after = [...diffByName(t1, t2)].filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
          console.log(
            `${v.repo} ${mode} tps ${tps} n ${n} load ${loadavg()[0]!.toFixed(1)} cpu/tx ${per(c1 - c0)} us (+drain ${per(c2 - c1)} us)\n` +
              `   during: ${during.map(([k, s]) => `${k}=${per(s)}`).join(" ")}\n` +
              `   drain:  ${after.map(([k, s]) => `${k}=${per(s)}`).join(" ")}`,
          );
        }
      }
      if (LATENCY) {
        const direct = { host: server.host, port: server.port, user: server.user, password: server.password };
        for (const v of [undefined, ...order]) {
          const c0 = v && procCpu(v.proc.pid);
          const t0 = v && threads(v.proc.pid);
          const ms = await latencies(
            v ? { host: "127.0.0.1", port: v.port, user: "pg-bench", password: v.token, ssl: insecureTls } : direct,
            LATENCY,
          );
          const per = (s: number) => ((s / (LATENCY + 500)) * 1e6).toFixed(0);
          const byThread = v
            ? [...diffByName(t0!, threads(v.proc.pid))].filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1])
            : [];
          const cpu = v
            ? ` cpu/query ${per(procCpu(v.proc.pid) - c0!)} us (${byThread.map(([k, s]) => `${k}=${per(s)}`).join(" ")})`
            : "";
          const at = (p: number) => ms[Math.min(ms.length - 1, Math.floor((ms.length * p) / 100))]!.toFixed(3);
          console.log(
            `${v?.repo ?? "direct"} latency p50 ${at(50)} p90 ${at(90)} p99 ${at(99)} p99.9 ${at(99.9)} max ` +
              `${ms.at(-1)!.toFixed(2)} ms${cpu} load ${loadavg()[0]!.toFixed(1)}`,
          );
        }
      }
      if (WIDE) {
        for (const v of order) {
          const devNull = openSync("/dev/null", "w");
          const t0 = threads(v.proc.pid);
          const c0 = procCpu(v.proc.pid);
          const s0 = process.hrtime.bigint();
          const child = spawn("psql", ["-X", "-q", "-A", "-t", "-c", "SELECT * FROM wide"], {
            env: env(v),
            stdio: ["ignore", devNull, "inherit"],
          });
          await new Promise((r) => child.once("close", r));
          const secs = Number(process.hrtime.bigint() - s0) / 1e9;
          closeSync(devNull);
          const t1 = threads(v.proc.pid);
          const c1 = procCpu(v.proc.pid);
          const during = [...diffByName(t0, t1)].filter(([, s]) => s > 0).sort((a, b) => b[1] - a[1]);
          console.log(
            `${v.repo} wide ${secs.toFixed(2)} s cpu ${(c1 - c0).toFixed(2)} s load ${loadavg()[0]!.toFixed(1)}\n` +
              `   during: ${during.map(([k, s]) => `${k}=${s.toFixed(2)}`).join(" ")}`,
          );
        }
      }
    }
  } finally {
    for (const v of vigils) await v.proc.stop();
    await server.stop();
    dir.cleanup();
  }
}

await main();
