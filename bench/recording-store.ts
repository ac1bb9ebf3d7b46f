// The recording store at fleet scale: 10 million generated events (~100k sessions of ~100 events,
// storage/testing/fleet.ts) stored in chDB through RecordingStore.insertEvents, then fleet search,
// one-session replay, SIEM export and bytes on disk.
// `node --import tsx bench/recording-store.ts` (VIGIL_BENCH_EVENTS=1000000 for a quicker run;
// VIGIL_BENCH_DIR=<dir> keeps the loaded store there) or `npm run bench -- recording-store`.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchResult, BenchRow } from "./run.js";
import type { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { openChdb } from "../storage/chdb.js";
import type { Executor } from "../storage/executor.js";
import { RecordingStore } from "../storage/recordings.js";
import { DAY_US, END_US, FleetGenerator, prng, SPAN_US, TABLES, USERS } from "../storage/testing/fleet.js";

export interface StoreBenchOptions {
  /** Events to generate (10 million by default; env VIGIL_BENCH_EVENTS). */
  events?: number;
  /** Sessions per insertEvents call (~100 events each). */
  sessionsPerBatch?: number;
  /** Timed calls per query kind. */
  queries?: number;
}

/** Latency of one kind of call: wall time, and the process's CPU time (chDB's threads included). */
export interface Latency {
  p50: number;
  p99: number;
  cpuP50: number;
  /** Rows or events the call returned, p50. */
  sizeP50: number;
}

/** The three reads the store is judged on, at one state of the table. */
export interface QueryNumbers {
  /** Active parts of `events` while measuring. */
  parts: number;
  /** The machine's 1-minute load average when the measurement ended. */
  load: number;
  commandSearch: Latency;
  sessionSearch: Latency;
  sessionRead: Latency;
}

/** The bench's numbers, raw, for callers that want more than the table. */
export interface StoreBenchNumbers {
  events: number;
  sessions: number;
  insertSeconds: number;
  eventsPerSecond: number;
  /** Right after loading, with the parts background merges left. */
  live: QueryNumbers;
  /** After OPTIMIZE FINAL: a table that stopped growing. */
  merged: QueryNumbers;
  export: { events: number; seconds: number; eventsPerSecond: number };
  bytesPerEvent: TableBytes;
  bytesPerCommandEvent: TableBytes;
  /** Compressed bytes per command event, by column. */
  columns: { column: string; bytes: number }[];
}

export type StoreBenchResult = BenchResult & { numbers: StoreBenchNumbers };

interface TableBytes {
  compressed: number;
  uncompressed: number;
  /** Compressed, with the text index. */
  withIndexes: number;
}

export async function runStoreBench(options: StoreBenchOptions = {}): Promise<StoreBenchResult> {
  const target = options.events ?? Number(process.env.VIGIL_BENCH_EVENTS ?? 10_000_000);
  const perBatch = options.sessionsPerBatch ?? 500;
  const queries = options.queries ?? 50;
  const load = loadavg()[0]!;
  const keep = process.env.VIGIL_BENCH_DIR;
  const dir = keep ?? mkdtempSync(join(tmpdir(), "vigil-store-bench-"));
  const db = await openChdb(dir);
  try {
    const store = await RecordingStore.open(db, { retentionDays: 0 });
    const loaded = await loadFleet(store, target, perBatch);
    const live = await measureQueries(db, store, loaded.sessionIds, queries);
    progress(`live (${live.parts} parts): ${JSON.stringify(live)}`);
    const exported = await exportOneDay(store);
    await db.exec("OPTIMIZE TABLE events FINAL");
    await db.exec("OPTIMIZE TABLE sessions FINAL");
    const merged = await measureQueries(db, store, loaded.sessionIds, queries);
    progress(`merged: ${JSON.stringify(merged)}`);
    const bytes = await commandBytes(db);
    return report(
      {
        events: loaded.events,
        sessions: loaded.sessionIds.length,
        insertSeconds: loaded.ms / 1000,
        eventsPerSecond: loaded.events / (loaded.ms / 1000),
        live,
        merged,
        export: exported,
        ...bytes,
      },
      { queries, load, perBatch },
    );
  } finally {
    await db.close();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

export const run = runStoreBench;

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`);
}

/** Insert the generated fleet batch by batch, timing insertEvents alone (not the generator). */
async function loadFleet(store: RecordingStore, target: number, perBatch: number) {
  const gen = new FleetGenerator();
  const sessionIds: string[] = [];
  let events = 0;
  let ms = 0;
  while (events < target) {
    const batch: RecordingEvent[] = [];
    for (let i = 0; i < perBatch && events + batch.length < target; i++) {
      const session = gen.next();
      sessionIds.push(session[0]!.sessionId);
      batch.push(...session);
    }
    const t = await timed(() => store.insertEvents(batch));
    if (t.value.inserted !== batch.length) throw new Error(`inserted ${t.value.inserted} of ${batch.length}`);
    ms += t.ms;
    events += batch.length;
    if (sessionIds.length % (perBatch * 20) === 0) progress(`${events} events, ${Math.round(events / (ms / 1000))}/s`);
  }
  return { sessionIds, events, ms };
}

/** Wall and CPU time of one call. CPU covers the whole process, chDB's threads included. */
async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; cpuMs: number; value: T }> {
  const start = performance.now();
  const cpu = process.cpuUsage();
  const value = await f();
  const used = process.cpuUsage(cpu);
  return { ms: performance.now() - start, cpuMs: (used.user + used.system) / 1000, value };
}

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * A forensic question: one user, one day somewhere in the 30, one table name. Each call draws a
 * different one; the same seed asks the same questions of both table states.
 */
async function measureQueries(
  db: Executor,
  store: RecordingStore,
  sessionIds: string[],
  n: number,
): Promise<QueryNumbers> {
  const rnd = prng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const question = () => {
    const start = END_US - SPAN_US + BigInt(Math.floor(rnd() * 29 * Number(DAY_US)));
    return {
      user: pick(USERS),
      from: new Date(Number(start / 1000n)),
      to: new Date(Number((start + DAY_US) / 1000n)),
      q: pick(TABLES),
    };
  };
  const kinds = {
    commandSearch: async () => (await store.searchEvents(question())).events.length,
    sessionSearch: async () => (await store.searchSessions(question())).sessions.length,
    sessionRead: async () => (await store.sessionEvents(pick(sessionIds))).length,
  };
  const samples = { commandSearch: [], sessionSearch: [], sessionRead: [] } as Record<
    keyof typeof kinds,
    { ms: number; cpuMs: number; value: number }[]
  >;
  for (let i = 0; i < n; i++) {
    for (const kind of Object.keys(kinds) as (keyof typeof kinds)[]) samples[kind].push(await timed(kinds[kind]));
  }
  const latency = (xs: { ms: number; cpuMs: number; value: number }[]): Latency => ({
    p50: percentile(
      xs.map((x) => x.ms),
      50,
    ),
    p99: percentile(
      xs.map((x) => x.ms),
      99,
    ),
    cpuP50: percentile(
      xs.map((x) => x.cpuMs),
      50,
    ),
    sizeP50: percentile(
      xs.map((x) => x.value),
      50,
    ),
  });
  const [parts] = await db.query<{ n: number | string }>(
    "SELECT count() AS n FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active",
  );
  return {
    parts: Number(parts?.n),
    load: loadavg()[0]!,
    commandSearch: latency(samples.commandSearch),
    sessionSearch: latency(samples.sessionSearch),
    sessionRead: latency(samples.sessionRead),
  };
}

/** A SIEM pulling one day in the middle of the range, page after page. */
async function exportOneDay(store: RecordingStore) {
  const day = END_US - 15n * DAY_US;
  let events = 0;
  const t = await timed(async () => {
    const range = { from: new Date(Number(day / 1000n)), to: new Date(Number((day + DAY_US) / 1000n)) };
    for await (const _ of store.exportEvents(range)) events++;
  });
  return { events, seconds: t.ms / 1000, eventsPerSecond: events / (t.ms / 1000) };
}

/** Bytes of the merged events table, and of a copy holding only its command events. */
async function commandBytes(db: Executor) {
  const all = await tableBytes(db, "events");
  await db.exec("DROP TABLE IF EXISTS bench_commands");
  await db.exec("CREATE TABLE bench_commands AS events");
  await db.exec(
    `INSERT INTO bench_commands (session_id, seq, time, version, body, type, command, decision, rule, kinds, hash, signature)
     SELECT session_id, seq, time, version, body, type, command, decision, rule, kinds, hash, signature
     FROM events WHERE type = 'command'`,
  );
  await db.exec("OPTIMIZE TABLE bench_commands FINAL");
  const commands = await tableBytes(db, "bench_commands");
  const columns = await db.query<{ column: string; bytes: string }>(
    `SELECT name AS column, toString(data_compressed_bytes) AS bytes
     FROM system.columns WHERE database = currentDatabase() AND table = 'bench_commands'
     ORDER BY data_compressed_bytes DESC`,
  );
  await db.exec("DROP TABLE bench_commands");
  const perRow = (t: Awaited<ReturnType<typeof tableBytes>>): TableBytes => ({
    compressed: t.compressed / t.rows,
    uncompressed: t.uncompressed / t.rows,
    withIndexes: (t.compressed + t.indexes) / t.rows,
  });
  return {
    bytesPerEvent: perRow(all),
    bytesPerCommandEvent: perRow(commands),
    columns: columns.map((c) => ({ column: c.column, bytes: Number(c.bytes) / commands.rows })),
  };
}

async function tableBytes(db: Executor, table: string) {
  const [row] = await db.query<{ rows: string; c: string; u: string; i: string }>(
    `SELECT toString(sum(rows)) AS rows, toString(sum(data_compressed_bytes)) AS c,
            toString(sum(data_uncompressed_bytes)) AS u, toString(sum(secondary_indices_compressed_bytes)) AS i
     FROM system.parts WHERE database = currentDatabase() AND table = {table:String} AND active`,
    { table },
  );
  return { rows: Number(row?.rows), compressed: Number(row?.c), uncompressed: Number(row?.u), indexes: Number(row?.i) };
}

function report(n: StoreBenchNumbers, run: { queries: number; load: number; perBatch: number }): StoreBenchResult {
  const within = (value: number, limit: number, unit: string) =>
    `≤ ${limit} ${unit}${value <= limit ? "" : ": missed"}`;
  const row = (metric: string, vigil: number, unit: string, better: "higher" | "lower", target?: string): BenchRow => ({
    metric,
    direct: null,
    vigil,
    unit,
    ratio: null,
    better,
    ...(target ? { target } : {}),
  });
  const { live, merged } = n;
  const cmd = n.bytesPerCommandEvent;
  const all = n.bytesPerEvent;
  const rows: BenchRow[] = [
    row("insert rate through insertEvents (~50k events a call)", n.eventsPerSecond / 1000, "k events/s", "higher"),
    row(
      "command search p50: user + 1-day range + word",
      live.commandSearch.p50,
      "ms",
      "lower",
      within(live.commandSearch.p50, 300, "ms"),
    ),
    row("command search p99", live.commandSearch.p99, "ms", "lower"),
    row(
      "session search p50: user + 1-day range + word",
      live.sessionSearch.p50,
      "ms",
      "lower",
      within(live.sessionSearch.p50, 300, "ms"),
    ),
    row("session search p99", live.sessionSearch.p99, "ms", "lower"),
    row(
      "one session's events in order p50",
      live.sessionRead.p50,
      "ms",
      "lower",
      within(live.sessionRead.p50, 100, "ms"),
    ),
    row(
      "one session's events in order p99",
      live.sessionRead.p99,
      "ms",
      "lower",
      within(live.sessionRead.p99, 100, "ms"),
    ),
    row("command search p50, table merged", merged.commandSearch.p50, "ms", "lower"),
    row("session search p50, table merged", merged.sessionSearch.p50, "ms", "lower"),
    row("one session's events p50, table merged", merged.sessionRead.p50, "ms", "lower"),
    row(
      `export one day (${n.export.events} events, pages of 10000)`,
      n.export.eventsPerSecond / 1000,
      "k events/s",
      "higher",
    ),
    row("bytes per command event, compressed", cmd.compressed, "B", "lower", within(cmd.compressed, 60, "B")),
    row("bytes per command event with its share of the text index", cmd.withIndexes, "B", "lower"),
    row("bytes per event (all types), compressed", all.compressed, "B", "lower"),
  ];
  const cpu = (q: QueryNumbers) =>
    `command search ${q.commandSearch.cpuP50.toFixed(0)} ms, session search ${q.sessionSearch.cpuP50.toFixed(0)} ms, session read ${q.sessionRead.cpuP50.toFixed(0)} ms`;
  const columns = n.columns
    .filter((c) => c.bytes >= 0.1)
    .map((c) => `${c.column} ${c.bytes.toFixed(1)}`)
    .join(", ");
  return {
    name: "recording-store",
    title: `Recording store: ${(n.events / 1e6).toFixed(n.events >= 1e6 ? 0 : 1)}M events in chDB (embedded ClickHouse)`,
    when: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
    command: "node --import tsx bench/recording-store.ts",
    rows,
    notes: [
      `${n.events} events in ${n.sessions} generated sessions (storage/testing/fleet.ts: postgres, ssh, kubernetes and http; 40 users, 5 segments, 30 days), inserted ${run.perBatch} sessions per insertEvents call (dedupe query, session summaries, events) in ${n.insertSeconds.toFixed(0)} s.`,
      `Reads: ${run.queries} calls of each kind, each search a different user, 1-day window and table name (q), page size 50; results per call p50: ${live.commandSearch.sizeP50} commands, ${live.sessionSearch.sizeP50} sessions, ${live.sessionRead.sizeP50} events per session read (sessionEvents, rows to RecordingEvents included). First right after loading (${live.parts} parts of events), then after OPTIMIZE FINAL (${merged.parts}).`,
      `CPU time per call p50 (the whole process, chDB's threads included; it moves less than wall time on a shared machine): live ${cpu(live)}; merged ${cpu(merged)}.`,
      `Bytes after OPTIMIZE FINAL. Command events alone (a copy of the table holding only them): ${cmd.compressed.toFixed(1)} B compressed of ${cmd.uncompressed.toFixed(0)} B (${(cmd.uncompressed / cmd.compressed).toFixed(1)}×), ${cmd.withIndexes.toFixed(1)} B with the text index; by column: ${columns} B. All events: ${all.compressed.toFixed(1)} B of ${all.uncompressed.toFixed(0)} B (${(all.uncompressed / all.compressed).toFixed(1)}×), ${all.withIndexes.toFixed(1)} B with the text index.`,
      `Load average (1 min) at the start ${run.load.toFixed(1)}, after the live reads ${live.load.toFixed(1)}, after the merged ones ${merged.load.toFixed(1)}: a shared 2-vCPU machine, where other jobs' load moves wall times (CPU times move less).`,
    ],
    numbers: n,
  };
}

function table(r: BenchResult): string {
  const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toFixed(3));
  return [
    `### ${r.title}`,
    "",
    `\`${r.command}\` — ${r.when.slice(0, 10)}, ${r.machine}`,
    "",
    "| metric | value | target |",
    "|---|---:|---|",
    ...r.rows.map((row) => `| ${row.metric} | ${fmt(row.vigil)} ${row.unit} | ${row.target ?? ""} |`),
    "",
    ...r.notes.map((note) => `- ${note}`),
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runStoreBench();
  writeFileSync(
    join(fileURLToPath(new URL(".", import.meta.url)), "results", "recording-store.json"),
    JSON.stringify(result, null, 2) + "\n",
  );
  console.log(table(result));
  process.exit(0);
}
