import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { insertColumns, type Executor } from "./executor.js";

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

  close(): Promise<void> {
    return this.client.close();
  }
}
