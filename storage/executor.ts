/**
 * The one seam between Vigil and ClickHouse. Every statement the recording store runs goes through
 * this interface, so the same SQL runs on a ClickHouse server (`@clickhouse/client`, see
 * clickhouse.ts) and on chDB, ClickHouse embedded in this process (chdb.ts).
 *
 * Values never enter SQL text: statements name them as `{name:Type}` and pass them in `params`,
 * and ClickHouse binds them on its side.
 */
export interface Executor {
  /** Run a SELECT; rows come back as JSON objects (JSONEachRow). */
  query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /** Run a statement whose output is not needed (DDL, ALTER, INSERT … SELECT). */
  exec(sql: string, params?: Record<string, unknown>): Promise<void>;
  /**
   * Insert rows as JSONEachRow. Every row has the keys of the first row; keys may name EPHEMERAL
   * columns, from which DEFAULT columns are computed (so the column list is always sent).
   */
  insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void>;
  /**
   * Insert rows already serialized in ClickHouse's RowBinary format, holding the values of
   * `columns` in that order. The hot path (ingest), which writes each row once: ClickHouse reads
   * binary rows for a third of the CPU that the same rows take as JSON text. The rows are stored as
   * given: a ReplacingMergeTree does not collapse repeated keys within the insert
   * (`ROW_INSERT_SETTINGS`); the caller leaves them out, and merges collapse any across inserts.
   */
  insertRowBinary(table: string, columns: readonly string[], rows: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * `insertRowBinary`'s settings. `optimize_on_insert` 0: ClickHouse does not run the table's merge
 * (ReplacingMergeTree's collapse of repeated keys) over each inserted block. The recording store's
 * batches hold every event once (EventBatch leaves out repeats), so that pass found nothing and cost
 * ~10% of an insert's CPU (0.5–0.7 µs a row, ingest's 40,000-row inserts measured alone).
 */
export const ROW_INSERT_SETTINGS = { optimize_on_insert: 0 } as const;

/** A column list of the store's own code (never of values) for an INSERT statement. */
export function columnList(columns: readonly string[]): string {
  for (const c of columns) if (!/^[a-z_][a-z0-9_]*$/.test(c)) throw new Error(`not a column name: ${c}`);
  return columns.join(", ");
}

/** Rows as one JSONEachRow payload: one JSON object a line. */
export function toJsonEachRow(rows: readonly Record<string, unknown>[]): string {
  let out = "";
  for (const row of rows) out += JSON.stringify(row) + "\n";
  return out;
}

/** The column list of an insert: the first row's keys. */
export function insertColumns(rows: readonly Record<string, unknown>[]): string[] {
  const first = rows[0];
  return first ? Object.keys(first) : [];
}
