import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { threadId } from "node:worker_threads";
import { VigilError } from "../lib/errors.js";
import { columnList, insertColumns, ROW_INSERT_SETTINGS, toJsonEachRow, type Executor } from "./executor.js";

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
  return new ChdbExecutor(new chdb.Session(path), chdb, insertsDir(path));
}

/**
 * Where this process writes insert payloads for chDB to read (`insertRowBinary`), under the data
 * directory: `<path>/inserts`. Files another process left there (it crashed mid-insert) are removed;
 * only one process at a time uses a data directory.
 */
function insertsDir(path: string): string {
  const dir = join(path, "inserts");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mine = `${process.pid}-`;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(mine)) rmSync(join(dir, name), { force: true });
  }
  return dir;
}

/** Numbers the insert files of this thread (several executors may share a thread and a path). */
let insertFiles = 0;

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

/** `ROW_INSERT_SETTINGS` as an INSERT's SETTINGS clause. */
const ROW_INSERT_CLAUSE = Object.entries(ROW_INSERT_SETTINGS)
  .map(([name, value]) => `${name} = ${value}`)
  .join(", ");

class ChdbExecutor implements Executor {
  /** Operations still running: close() waits for them, since closing under one aborts the engine. */
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly session: ChdbSession,
    private readonly chdb: Chdb,
    private readonly inserts: string,
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

  /**
   * chDB's raw insert takes text formats only, and binary data inside a query's text does not come
   * through whole; ClickHouse reads RowBinary from a file (`FROM INFILE`). Writing a 40,000-event
   * payload (~13 MB) to the page cache costs a few milliseconds; reading it as binary saves chDB
   * ~5 µs per row against JSON text.
   */
  async insertRowBinary(table: string, columns: readonly string[], rows: Uint8Array): Promise<void> {
    if (rows.length === 0) return;
    await this.track(this.insertFile(table, columns, rows));
  }

  private async insertFile(table: string, columns: readonly string[], rows: Uint8Array): Promise<void> {
    const file = join(this.inserts, `${process.pid}-${threadId}-${++insertFiles}.rowbinary`);
    try {
      // Made again if someone removed it while the store was open: one call per insert.
      await mkdir(this.inserts, { recursive: true, mode: 0o700 });
      await writeFile(file, rows, { mode: 0o600 });
      await this.session.queryAsync(
        `INSERT INTO ${table} (${columnList(columns)}) FROM INFILE ${stringLiteral(file)} ` +
          `SETTINGS ${ROW_INSERT_CLAUSE} FORMAT RowBinary`,
        { format: "Null" },
      );
    } finally {
      await rm(file, { force: true });
    }
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

/** A ClickHouse string literal. */
function stringLiteral(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;
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
