// `npm run bench -- recording`: the recording path's three targets in one table.
// - relay publish through JetStreamSink into nats-server (bench/recording-publish.ts),
// - ingest of a JetStream backlog into ClickHouse (bench/recording-ingest.ts),
// - the store at fleet scale: search, session reads and bytes per event (bench/recording-store.ts).
import { cpus } from "node:os";
import type { BenchResult } from "./run.js";
import { runIngestBench } from "./recording-ingest.js";
import { runPublishBench } from "./recording-publish.js";
import { runStoreBench } from "./recording-store.js";

export async function run(): Promise<BenchResult> {
  const publish = await runPublishBench();
  const ingest = await runIngestBench();
  const store = await runStoreBench();
  return {
    name: "recording",
    title: "Recordings: relay publish, ingest, and search over the store",
    when: new Date().toISOString(),
    machine: `${cpus().length} vCPU, ${cpus()[0]?.model ?? "unknown"}`,
    command: "npm run bench -- recording",
    rows: [...publish.rows, ...ingest.rows, ...store.rows],
    notes: [...publish.notes, ...ingest.notes, ...store.notes],
  };
}
