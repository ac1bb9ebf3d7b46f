// Recording publish throughput: realistic command events (hash-chained, ~200-byte bodies) from many
// sessions through JetStreamSink into a local nats-server, for ~10 s.
// Alone: `node --import tsx bench/recording-publish.ts` (writes bench/results/recording-publish.json).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { BenchResult } from "./run.js";
import { createLogger } from "../lib/log.js";
import { EventChain, RecordingEvent, type EventBody } from "../lib/recording/chain.js";
import { ensureRecordingStreams, messageId, recordingSubject } from "../lib/recording/nats.js";
import { JetStreamSink } from "../relay-agent/src/recording/jetstream.js";
import { startNats } from "../test/support/services.js";

const SECONDS = 10;
const SESSIONS = 64;
/** Events written and not yet acked: a relay's sessions produce, the sink keeps up or spools. */
const MAX_AHEAD = 4000;
const BASELINE_SECONDS = 2;

const TABLES = ["orders", "customers", "invoices", "shipments", "payments", "refunds"];

/** A command as the postgres engine records it: ~200 bytes of body. */
function command(n: number): EventBody {
  const table = TABLES[n % TABLES.length]!;
  return {
    $case: "command",
    value: {
      command: n,
      text: `SELECT id, status, total_cents, updated_at FROM ${table} WHERE customer_id = $1 AND status = ANY($2) ORDER BY updated_at DESC LIMIT 50`,
      source: "extended",
      kinds: ["select"],
      tablesRead: [table],
      tablesWritten: [],
      params: [{ text: String(100000 + n) }, { text: "{open,paid}" }],
      decision: 1,
      rule: "read-only-agents",
      reason: "",
    },
  };
}

const pct = (sorted: Float64Array, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

/** One publish awaited at a time: what a naive recorder would get. */
async function baseline(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const js = jetstream(nc);
    const chain = new EventChain("baseline");
    const subject = recordingSubject("bench", "baseline");
    const end = performance.now() + BASELINE_SECONDS * 1000;
    let n = 0;
    while (performance.now() < end) {
      const event = chain.append(command(n));
      await js.publish(subject, RecordingEvent.encode(event).finish(), { msgID: messageId("baseline", event.seq) });
      n++;
    }
    return n / BASELINE_SECONDS;
  } finally {
    await nc.close();
  }
}

const SPOOL_EVENTS = 100_000;

/**
 * The outage path: events written while NATS is unreachable go to the spool (write rate), then a
 * relay that finds NATS again drains it (drain rate).
 */
async function spoolRates(url: string, dir: string): Promise<{ spoolRate: number; drainRate: number }> {
  const common = {
    name: "vigil-relay-bench",
    segment: "bench-spool",
    spool: { dir: join(dir, "outage"), maxBytes: 1 << 30 },
    onFailure: "block" as const,
    log: createLogger("error"), // "NATS unreachable" is the point here
  };
  const away = new JetStreamSink({ ...common, servers: "nats://127.0.0.1:1" });
  const chains = Array.from({ length: SESSIONS }, (_, i) => new EventChain(`outage-${i}`));
  const events = Array.from({ length: SPOOL_EVENTS }, (_, i) => {
    const chain = chains[i % SESSIONS]!;
    return chain.append(command(chain.length));
  });
  let t0 = performance.now();
  for (const e of events) away.write(e);
  await Promise.all(chains.map((c) => away.flush(c.sessionId)));
  const spoolRate = SPOOL_EVENTS / ((performance.now() - t0) / 1000);
  await away.close();
  t0 = performance.now();
  const back = new JetStreamSink({ ...common, servers: url, retryMs: 50 });
  while (back.spooling) await new Promise((r) => setTimeout(r, 5));
  const drainRate = SPOOL_EVENTS / ((performance.now() - t0) / 1000);
  await back.close();
  return { spoolRate, drainRate };
}

export async function runPublishBench(): Promise<BenchResult> {
  const nats = await startNats();
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-rec-"));
  try {
    const nc = await connect({ servers: nats.url });
    await ensureRecordingStreams(await jetstreamManager(nc));
    await nc.close();

    let acked = 0;
    const ackMs = new Float64Array(SECONDS * 100_000);
    let samples = 0;
    let wake: (() => void) | undefined;
    const sink = new JetStreamSink({
      servers: nats.url,
      name: "vigil-relay-bench",
      segment: "bench",
      spool: { dir: join(dir, "spool"), maxBytes: 1 << 30 },
      onFailure: "block",
      log: createLogger("warn"),
      onAck: (ms) => {
        acked++;
        if (samples < ackMs.length) ackMs[samples++] = ms;
        const w = wake;
        wake = undefined;
        w?.();
      },
    });
    while (sink.spooling) await new Promise((r) => setTimeout(r, 20));

    const chains = Array.from({ length: SESSIONS }, (_, i) => new EventChain(`bench-${i}`));
    let written = 0;
    let bodyBytes = 0;
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    while (performance.now() < end) {
      // Write in small bursts, as sessions do; stay at most MAX_AHEAD events ahead of the acks.
      for (let i = 0; i < 100 && written - acked < MAX_AHEAD; i++) {
        const chain = chains[written % SESSIONS]!;
        const event = chain.append(command(chain.length));
        if (written < 1000) bodyBytes += RecordingEvent.encode(event).finish().length;
        sink.write(event);
        written++;
      }
      if (written - acked >= MAX_AHEAD) await new Promise<void>((r) => (wake = r));
      else await new Promise((r) => setImmediate(r));
    }
    await Promise.all(chains.map((c) => sink.flush(c.sessionId)));
    const seconds = (performance.now() - t0) / 1000;
    const spooled = sink.spooling;
    await sink.close();
    const rate = written / seconds;
    const sorted = ackMs.subarray(0, samples).sort();
    const naive = await baseline(nats.url);
    const { spoolRate, drainRate } = await spoolRates(nats.url, dir);

    return {
      name: "recording-publish",
      title: "Recording events to JetStream (relay side, local nats-server)",
      when: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
      command: "node --import tsx bench/recording-publish.ts",
      rows: [
        {
          metric: `events/s sustained, ${SESSIONS} sessions, ${SECONDS} s (direct: one awaited publish at a time)`,
          direct: naive / 1000,
          vigil: rate / 1000,
          unit: "k/s",
          ratio: rate / naive,
          better: "higher",
          target: "≥ 20 k/s",
        },
        { metric: "ack latency p50", direct: null, vigil: pct(sorted, 50), unit: "ms", ratio: null, better: "lower" },
        { metric: "ack latency p99", direct: null, vigil: pct(sorted, 99), unit: "ms", ratio: null, better: "lower" },
        {
          metric: `NATS away: events/s into the disk spool (${SPOOL_EVENTS / 1000}k events, fdatasync'd)`,
          direct: null,
          vigil: spoolRate / 1000,
          unit: "k/s",
          ratio: null,
          better: "higher",
        },
        {
          metric: "NATS back: spool drained into JetStream",
          direct: null,
          vigil: drainRate / 1000,
          unit: "k/s",
          ratio: null,
          better: "higher",
        },
      ],
      notes: [
        `${written} events of ~${Math.round(bodyBytes / Math.min(written, 1000))} bytes encoded (hash chain included), built with EventChain while publishing.`,
        `Up to 1000 publishes await their acks at once; the writer stays at most ${MAX_AHEAD} events ahead of the acks.`,
        `Ack latency: from the publish to its JetStream ack, per event.${spooled ? " The sink fell back to its spool during the run." : ""}`,
        "nats-server and the publisher share the same 2 cores.",
      ],
    };
  } finally {
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const run = runPublishBench;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await runPublishBench();
  const out = fileURLToPath(new URL("results/recording-publish.json", import.meta.url));
  writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  for (const row of result.rows) console.log(`${row.metric}: ${row.vigil.toFixed(2)} ${row.unit}`);
  console.log(result.notes.join("\n"));
  process.exit(0);
}
