import { mkdirSync } from "node:fs";
import { VigilError } from "../lib/errors.js";
import { insertColumns, LINE_INSERT_SETTINGS, toJsonEachRow, type Executor } from "./executor.js";

type Chdb = typeof import("chdb");
type ChdbSession = InstanceType<Chdb["Session"]>;

/**
 * ClickHouse embedded in this process (chDB), storing its data under `path`. Queries and inserts
 * run on libuv worker threads (the async chDB API), so a long search never blocks the event loop.
 *
 * chDB binds one data directory per process: every part of a process that needs ClickHouse must
 * share this path (several executors on the same path are fine).
 */
export async function openChdb(path: string): Promise<Executor> {
  const chdb = await loadChdb();
  mkdirSync(path, { recursive: true, mode: 0o700 });
  return new ChdbExecutor(new chdb.Session(path), chdb);
}

async function loadChdb(): Promise<Chdb> {
  try {
    return await import("chdb");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") throw err;
    throw new VigilError(
      "internal",
      "embedded storage needs the optional package chdb, which is not installed: " +
        "run `npm install chdb`, or set storage.clickhouse.url to use a ClickHouse server",
      { cause: err },
    );
  }
}

/**
 * `insertLines` settings, here. Parallel parsing splits a payload into chunks for several threads and
 * merges their blocks again: in this process, which shares its CPUs with the hub and ingest, parsing
 * on one thread took ~10% less CPU per row (ingest's 20,000-row inserts, measured alone) and was no
 * slower.
 */
const CHDB_LINE_INSERT_SETTINGS = { ...LINE_INSERT_SETTINGS, input_format_parallel_parsing: 0 } as const;

class ChdbExecutor implements Executor {
  /** Operations still running: close() waits for them, since closing under one aborts the engine. */
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly session: ChdbSession,
    private readonly chdb: Chdb,
  ) {}

  async query<T = Record<string, unknown>>(sql: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const result = await this.track(this.session.queryBindAsync(sql, params, { format: "JSONEachRow" }));
    return parseJsonEachRow<T>(result.text());
  }

  async exec(sql: string, params: Record<string, unknown> = {}): Promise<void> {
    await this.track(this.session.queryBindAsync(sql, params, { format: "Null" }));
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    if (rows.length === 0) return;
    // The raw insert hands the payload to the engine's own JSONEachRow parser: no SQL is built.
    await this.track(
      this.session.insert({
        table,
        values: Buffer.from(toJsonEachRow(rows)),
        format: "JSONEachRow",
        columns: insertColumns(rows),
      }),
    );
  }

  async insertLines(table: string, columns: readonly string[], lines: Uint8Array): Promise<void> {
    if (lines.length === 0) return;
    await this.track(
      this.session.insert({
        table,
        values: lines,
        format: "JSONCompactEachRow",
        columns,
        settings: CHDB_LINE_INSERT_SETTINGS,
      }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.running]);
    this.session.close();
    // The process's one data directory is free only when chDB says so.
    await this.chdb.drainPending();
  }

  private track<T>(op: Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new VigilError("internal", "the chDB store is closed"));
    this.running.add(op);
    const forget = () => this.running.delete(op);
    op.then(forget, forget);
    return op;
  }
}

function parseJsonEachRow<T>(text: string): T[] {
  const rows: T[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    if (end > start) rows.push(JSON.parse(text.slice(start, end)) as T);
    start = end + 1;
  }
  return rows;
}
