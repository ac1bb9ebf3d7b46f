import { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { columnList, insertColumns, ROW_INSERT_SETTINGS, type Executor } from "./executor.js";

export interface ClickHouseOptions {
  /** HTTP(S) endpoint, e.g. `http://clickhouse:8123`; user and password may be in the URL. */
  url: string;
  /** Created when missing. */
  database: string;
}

/** A ClickHouse server or cluster, over HTTP with `@clickhouse/client`. */
export async function openClickHouse(options: ClickHouseOptions): Promise<Executor> {
  // The database may not exist yet, so the first connection names none.
  const admin = createClient({ url: options.url });
  try {
    await admin.command({
      query: "CREATE DATABASE IF NOT EXISTS {database:Identifier}",
      query_params: { database: options.database },
    });
  } finally {
    await admin.close();
  }
  return clickHouseExecutor(createClient({ url: options.url, database: options.database }));
}

/** An Executor over a client already made (tests give it chDB's connection for @clickhouse/client). */
export function clickHouseExecutor(client: ClickHouseClient): Executor {
  return new ClickHouseExecutor(client);
}

class ClickHouseExecutor implements Executor {
  constructor(private readonly client: ClickHouseClient) {}

  async query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    const result = await this.client.query({ query: sql, query_params: params, format: "JSONEachRow" });
    return result.json<T>();
  }

  async exec(sql: string, params?: Record<string, unknown>): Promise<void> {
    await this.client.command({ query: sql, query_params: params });
  }

  async insert(table: string, rows: readonly Record<string, unknown>[]): Promise<void> {
    const [first, ...rest] = insertColumns(rows);
    if (first === undefined) return;
    await this.client.insert({
      table,
      values: rows as Record<string, unknown>[],
      format: "JSONEachRow",
      columns: [first, ...rest],
    });
  }

  async insertRowBinary(table: string, columns: readonly string[], rows: Uint8Array): Promise<void> {
    if (rows.length === 0) return;
    // The client's insert() takes objects or text; exec() sends the payload as it is.
    // Table and column names come from the store's code, never from values.
    const result = await this.client.exec({
      query: `INSERT INTO ${table} (${columnList(columns)}) FORMAT RowBinary`,
      values: Readable.from([rows]),
      clickhouse_settings: ROW_INSERT_SETTINGS,
    });
    // The answer to an INSERT is empty; reading it to the end keeps the connection reusable.
    await finished(result.stream.resume());
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
