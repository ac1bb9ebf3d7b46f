// Ingest throughput: a backlog of recorded events on JetStream, stored into ClickHouse (chDB) by the
// ingest worker, batched and acked after each insert. Measures the sustained drain rate: the median of
// VIGIL_BENCH_ROUNDS drains (3) of the same backlog, each by a new consumer into an emptied store.
// Alone: `node --import tsx bench/recording-ingest.ts` (writes bench/results/recording-ingest.json).
// VIGIL_BENCH_INGEST_PROFILE=FILE writes a CPU profile of the worker's JS thread during the first
// drain (open it in Chrome's DevTools).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { Session } from "node:inspector/promises";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { BenchResult } from "./run.js";
import { createLogger, type Logger } from "../lib/log.js";
import { generateKey } from "../lib/keys.js";
import { EventChain, RecordingEvent, type EventBody } from "../lib/recording/chain.js";
import {
  ensureRecordingStreams,
  INGEST_CONSUMER,
  messageId,
  RECORDING_STREAM,
  recordingSubject,
} from "../lib/recording/nats.js";
import { openChdb } from "../storage/chdb.js";
import { RecordingStore } from "../storage/recordings.js";
import { Ingest } from "../hub/src/recordings/ingest.js";
import { startNats } from "../test/support/services.js";

const EVENTS = Number(process.env.VIGIL_BENCH_INGEST_EVENTS ?? 300_000);
const PER_SESSION = 100;
const ROUNDS = Number(process.env.VIGIL_BENCH_ROUNDS ?? 3);
const TABLES = ["orders", "customers", "invoices", "shipments", "payments", "refunds"];

function command(n: number): EventBody {
  const table = TABLES[n % TABLES.length]!;
  return {
    $case: "command",
    value: {
      command: n,
      text: `SELECT id, status, total_cents FROM ${table} WHERE customer_id = ${100000 + n} ORDER BY updated_at DESC LIMIT 50`,
      source: "sql",
      kinds: ["select"],
      tablesRead: [table],
      tablesWritten: [],
      params: [],
      decision: 1,
      rule: "read-only-agents",
      reason: "",
    },
  };
}

export async function runIngestBench(): Promise<BenchResult> {
  const loadAtStart = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-ingest-"));
  const nats = await startNats();
  const nc = await connect({ servers: nats.url });
  const log = createLogger("warn");
  try {
    // The backlog, as relays would have published it: sessions of PER_SESSION events.
    const js = jetstream(nc);
    const key = generateKey();
    await ensureRecordingStreams(await jetstreamManager(nc));
    let pending: Promise<unknown>[] = [];
    for (let s = 0; s * PER_SESSION < EVENTS; s++) {
      const id = `bench-${s}`;
      const chain = new EventChain(id);
      for (let n = 0; n < PER_SESSION; n++) {
        const body: EventBody =
          n === 0
            ? {
                $case: "sessionStart",
                value: {
                  connection: "orders-db",
                  connectionType: "postgres",
                  segment: `seg-${s % 4}`,
                  relayId: "bench",
                  hubId: "",
                  user: `agent-${s % 50}`,
                  groups: ["agents"],
                  clientAddress: "10.0.0.1",
                  params: [],
                  target: "10.0.3.7:5432",
                },
              }
            : command(n);
        const event =
          n === PER_SESSION - 1
            ? chain.seal({ $case: "sessionEnd", value: { error: "", commands: n - 1 } }, key.privateKey)
            : chain.append(body);
        pending.push(
          js.publish(recordingSubject(`seg-${s % 4}`, id), RecordingEvent.encode(event).finish(), {
            msgID: messageId(id, event.seq),
          }),
        );
        if (pending.length >= 2000) {
          await Promise.all(pending);
          pending = [];
        }
      }
    }
    await Promise.all(pending);

    const executor = await openChdb(join(dir, "clickhouse"));
    const store = await RecordingStore.open(executor, { retentionDays: 0 });
    const jsm = await jetstreamManager(nc);
    const drains: Drain[] = [];
    try {
      for (let round = 0; round < ROUNDS; round++) {
        if (round > 0) {
          // The same backlog again, to a new consumer and an empty store: every message a first delivery.
          await jsm.consumers.delete(RECORDING_STREAM, INGEST_CONSUMER);
          await executor.exec("TRUNCATE TABLE events");
          await executor.exec("TRUNCATE TABLE sessions");
        }
        drains.push(await drain(nc, store, log, round === 0 ? process.env.VIGIL_BENCH_INGEST_PROFILE : undefined));
        const [row] = await executor.query<{ n: string }>("SELECT count() AS n FROM events");
        if (Number(row!.n) !== EVENTS) throw new Error(`stored ${row!.n} rows, expected ${EVENTS}`);
      }
    } finally {
      await executor.close();
    }
    // The median drain is the result; each one is in the notes.
    const median = [...drains].sort((a, b) => a.rate - b.rate)[Math.floor(drains.length / 2)]!;
    const perEventUs = (d: Drain) => (1e6 * (d.workerCpu + d.natsCpu)) / EVENTS;
    return {
      name: "recording-ingest",
      title: "Recording ingest: JetStream backlog → ClickHouse (chDB)",
      when: new Date().toISOString(),
      machine: `${cpus().length} vCPU, ${cpus()[0]?.model ?? "unknown"}`,
      command: "npm run bench -- recording-ingest",
      rows: [
        {
          metric: `ingest, sustained (backlog drain, median of ${drains.length})`,
          direct: null,
          vigil: median.rate,
          unit: "events/s",
          ratio: null,
          better: "higher",
          target: "≥ 50000 events/s",
        },
      ],
      notes: [
        `${EVENTS} events (${EVENTS / PER_SESSION} sessions) waiting on the stream, then one ingest worker: durable pull consumer (80,000 unacked at most), batches of up to 40,000, filled while JetStream has more waiting (the next one read while one is inserted, into the buffers of the one before; command events written into the insert payload as RowBinary rows straight from their protobuf bytes), insert into chDB from a file (FROM INFILE; stored events looked up only in batches with a redelivered message), then one ack per message, a batch's acks in one write. The backlog is drained ${drains.length} times, each by a new consumer into an emptied store.`,
        `nats-server, chDB and the worker share this machine's CPUs; load average at the start ${loadAtStart.toFixed(1)}.`,
        `Drains: ${drains.map((d) => `${(d.rate / 1000).toFixed(1)}k events/s (${d.seconds.toFixed(2)} s, ${perEventUs(d).toFixed(0)} µs of CPU per event)`).join(", ")}.`,
        `CPU during the median drain: worker process (JS and chDB's threads) ${median.workerCpu.toFixed(1)} s, nats-server ${median.natsCpu.toFixed(1)} s: ${perEventUs(median).toFixed(0)} µs of CPU per event, so ${(EVENTS / ((median.workerCpu + median.natsCpu) / cpus().length) / 1000).toFixed(0)}k events/s at most with all ${cpus().length} CPUs free for it.`,
        `Worker CPU per event by thread (median drain): ${perEvent(median.threads)}.`,
      ],
    };
  } finally {
    await nc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Drain {
  rate: number;
  seconds: number;
  workerCpu: number;
  natsCpu: number;
  threads: Map<string, number>;
}

/** One ingest worker drains the backlog into the store; its rate and the CPU it took. */
async function drain(nc: NatsConnection, store: RecordingStore, log: Logger, profileTo?: string): Promise<Drain> {
  const ingest = new Ingest(nc, async () => store, log);
  const profile = profileTo ? await startProfile() : undefined;
  const natsCpu0 = processCpuSeconds(natsServerPid());
  const threads0 = threadCpuSeconds();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await ingest.start();
  while (ingest.status.stored < EVENTS) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const natsCpu = processCpuSeconds(natsServerPid()) - natsCpu0;
  const threads = threadCpuSeconds(threads0);
  if (profile) writeFileSync(profileTo!, JSON.stringify(await profile()));
  await ingest.stop();
  return { rate: EVENTS / seconds, seconds, workerCpu: (cpu.user + cpu.system) / 1e6, natsCpu, threads };
}

/** Start profiling this thread; the function returned stops and gives the profile. */
async function startProfile(): Promise<() => Promise<unknown>> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  return async () => {
    const { profile } = await session.post("Profiler.stop");
    session.disconnect();
    return profile;
  };
}

/** The nats-server this process started (startNats does not say its pid). */
function natsServerPid(): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (stat.includes("(nats-server)") && Number(fields[1]) === process.pid) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * CPU seconds of this process's threads by thread name (the main thread is "JS", chDB's threads
 * carry ClickHouse's pool names), minus `since` when given. Threads that
 * ended in between are missed: ClickHouse keeps its pools' threads.
 */
function threadCpuSeconds(since?: Map<string, number>): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      // Node's other threads (V8's, libuv's pool, which runs the chDB calls) are all called "node".
      const name = Number(tid) === process.pid ? "JS" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
    } catch {
      // ended meanwhile
    }
  }
  if (since) for (const [name, s] of byName) byName.set(name, s - (since.get(name) ?? 0));
  return byName;
}

/** The threads that used at least 1 µs per event, busiest first: `node 20.1 µs, …`. */
function perEvent(threads: Map<string, number>): string {
  return [...threads]
    .map(([name, s]) => [name, (1e6 * s) / EVENTS] as const)
    .filter(([, us]) => us >= 1)
    .sort((a, b) => b[1] - a[1])
    .map(([name, us]) => `${name} ${us.toFixed(1)} µs`)
    .join(", ");
}

/** User + system CPU of a process, from /proc (NaN when unknown). */
function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const run = runIngestBench;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runIngestBench();
  writeFileSync(new URL("./results/recording-ingest.json", import.meta.url), JSON.stringify(result, null, 2) + "\n");
  for (const row of result.rows) console.log(`${row.metric}: ${row.vigil.toFixed(0)} ${row.unit}`);
  console.log(result.notes.join("\n"));
  process.exit(0);
}
