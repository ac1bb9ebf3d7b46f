// Probe (not a benchmark of record): the CPU (all threads: row building, chDB's insert and merges) that
// storing pgbench -S-like events costs per event at a steady rate, by how often `vigil up`'s local sink
// would insert. `flock /tmp/vigil-bench.lock node --import tsx bench/store-probe.ts`; STORE_VARIANTS is
// `batchMs|sql@sql;…` (the SQL runs after migration, e.g. an ALTER to try), STORE_RATE events/s,
// STORE_SECONDS, STORE_ROUNDS. Each variant runs in a process of its own (chDB binds one data dir each).
// `build` is the CPU of building the batches' insert rows (EventBatch), part of `during`; both are
// process-wide, so chDB's background threads (merges) inflate them a little.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { EventChain, encodeChained } from "../lib/recording/chain.js";
import { openChdb } from "../storage/chdb.js";
import { EventBatch } from "../storage/event-batch.js";
import { RecordingStore } from "../storage/recordings.js";
import { Decision } from "../proto/gen/vigil/v1/recording.js";

const RATE = Number(process.env.STORE_RATE ?? 12_000); // events/s (≈ 6000 tps)
const SECONDS = Number(process.env.STORE_SECONDS ?? 20);
const SESSIONS = 8;

async function child(batchMs: number, sqls: string[], settle: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "store-probe-"));
  const exec = await openChdb(dir);
  const store = await RecordingStore.open(exec, { retentionDays: 0 });
  for (const sql of sqls) await exec.exec(sql);
  const chains = Array.from({ length: SESSIONS }, (_, i) => new EventChain(`0000000${i}-0000-4000-8000-000000000000`));
  let n = 0;
  const make = (): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const per = Math.round((RATE * batchMs) / 1000);
    for (let k = 0; k < per; k += 2) {
      const chain = chains[n % SESSIONS]!;
      const seq = ++n;
      const aid = (seq * 7919) % 1_000_000;
      const c = chain.append({
        $case: "command",
        value: {
          command: seq,
          text: `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
          source: "sql",
          kinds: ["select"],
          tablesRead: ["pgbench_accounts"],
          tablesWritten: [],
          params: [],
          decision: Decision.DECISION_ALLOW,
          rule: "",
          reason: "",
        },
      });
      out.push(encodeChained(c, chain.hashed));
      const r = chain.append({
        $case: "result",
        value: {
          command: seq,
          tag: "SELECT 1",
          rows: 1n,
          bytes: 0n,
          durationUs: BigInt(200 + (seq % 300)),
          digest: (BigInt(seq) * 0x9e3779b97f4a7c15n).toString(16).padStart(64, "0").slice(0, 64),
          columns: ["abalance"],
          sample: [{ values: [{ text: "0" }] }],
          error: undefined,
        },
      });
      out.push(encodeChained(r, chain.hashed));
    }
    return out;
  };
  const threads0 = threadCpu();
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  let events = 0;
  let gen = 0;
  let build = 0;
  let inserts = 0;
  while (Date.now() - t0 < SECONDS * 1000) {
    const tick = Date.now();
    const g0 = process.cpuUsage();
    const encoded = make();
    const total = encoded.reduce((s, e) => s + e.length, 0);
    const bytes = new Uint8Array(total);
    const ends = new Uint32Array(encoded.length);
    let at = 0;
    encoded.forEach((e, i) => (bytes.set(e, at), (at += e.length), (ends[i] = at)));
    const g = process.cpuUsage(g0);
    gen += g.user + g.system;
    const b0 = process.cpuUsage();
    const batch = EventBatch.fromEncoded(bytes, ends);
    const b = process.cpuUsage(b0);
    build += b.user + b.system;
    await store.insertBatch(batch, { mayBeStored: false });
    events += encoded.length;
    inserts++;
    const wait = batchMs - (Date.now() - tick);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const during = process.cpuUsage(cpu0);
  await new Promise((r) => setTimeout(r, settle * 1000));
  const all = process.cpuUsage(cpu0);
  const threads1 = threadCpu();
  const byThread: Record<string, string> = {};
  for (const [name, s] of threads1) byThread[name] = (((s - (threads0.get(name) ?? 0)) / events) * 1e6).toFixed(1);
  const parts = await exec.query<{ n: string }>(
    "SELECT count() AS n FROM system.parts WHERE active AND table = 'events'",
  );
  const us = (c: NodeJS.CpuUsage) => ((c.user + c.system - gen) / events).toFixed(1);
  console.log(
    JSON.stringify({
      batchMs,
      sqls,
      events,
      msPerInsert: ((during.user + during.system - gen) / inserts / 1000).toFixed(2),
      gen: (gen / events).toFixed(1),
      build: (build / events).toFixed(1),
      during: us(during),
      withSettle: us(all),
      parts: parts[0]?.n,
      byThread,
      load: loadavg()[0],
    }),
  );
  await exec.close();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === "child") {
  await child(
    Number(process.argv[3]),
    (process.argv[4] ?? "").split("@").filter(Boolean),
    Number(process.argv[5] ?? 5),
  );
} else {
  const variants = (process.env.STORE_VARIANTS ?? "250|;1000|").split(";").map((v) => v.split("|"));
  for (let r = 0; r < Number(process.env.STORE_ROUNDS ?? 2); r++) {
    for (const [ms, sql] of r % 2 ? [...variants].reverse() : variants) {
      const res = spawnSync(
        process.execPath,
        ["--import", "tsx", "bench/store-probe.ts", "child", ms!, sql ?? "", "5"],
        {
          encoding: "utf8",
        },
      );
      process.stdout.write(res.stdout + (res.status ? res.stderr.slice(-2000) : ""));
    }
  }
}

/** CPU seconds so far per thread name (the main thread as MAIN). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
      const name = Number(t) === process.pid ? "MAIN" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(name, (out.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // gone
    }
  }
  return out;
}
