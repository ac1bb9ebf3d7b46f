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
   * Insert rows already serialized as JSONCompactEachRow: one JSON array a line, holding the values
   * of `columns` in that order. The hot path (ingest), which builds each line once. A JSON object
   * given for a String column is stored as its exact text (`JSON_OBJECTS_AS_STRINGS`). The lines
   * are stored as given: a ReplacingMergeTree does not collapse repeated keys within the insert
   * (`LINE_INSERT_SETTINGS`); the caller leaves them out, and merges collapse any across inserts.
   */
  insertLines(table: string, columns: readonly string[], lines: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** The settings of every `insertLines`: a JSON object for a String column is stored as its text. */
export const JSON_OBJECTS_AS_STRINGS = { input_format_json_read_objects_as_strings: 1 } as const;

/**
 * `insertLines`' settings. `optimize_on_insert` 0: ClickHouse does not run the table's merge
 * (ReplacingMergeTree's collapse of repeated keys) over each inserted block. The recording store's
 * batches hold every event once (EventBatch leaves out repeats), so that pass found nothing and cost
 * ~10% of an insert's CPU (0.5–0.7 µs a row, ingest's 40,000-row inserts measured alone).
 */
export const LINE_INSERT_SETTINGS = { ...JSON_OBJECTS_AS_STRINGS, optimize_on_insert: 0 } as const;

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
