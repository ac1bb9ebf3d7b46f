import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Executor } from "./executor.js";

/**
 * Versioned schema: `storage/migrations/NNN_name.sql`, applied in order, each recorded in
 * `schema_migrations` once it ran.
 *
 * Two hubs may start at the same time and both apply the same migration. That is safe because
 * every statement in a migration must be idempotent (`CREATE … IF NOT EXISTS`, `ADD COLUMN IF NOT
 * EXISTS`, …) and `schema_migrations` is a ReplacingMergeTree that keeps one row per version.
 * ClickHouse has no transactions for DDL, so the rule above is what makes a half-applied migration
 * (a crash between two statements) safe to run again.
 */
export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export interface MigrateOptions {
  /** Keep recordings this many days; 0 keeps them forever. */
  retentionDays: number;
}

export interface MigrateResult {
  /** Versions applied by this call (none when the schema was current). */
  applied: number[];
  retentionChanged: boolean;
}

const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

export async function migrate(executor: Executor, options: MigrateOptions): Promise<MigrateResult> {
  await executor.exec(`
    CREATE TABLE IF NOT EXISTS schema_migrations
    (
        version UInt32,
        name String,
        applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    ORDER BY version`);
  const done = new Set(
    (await executor.query<{ version: number }>("SELECT DISTINCT version FROM schema_migrations")).map((r) =>
      Number(r.version),
    ),
  );
  const applied: number[] = [];
  for (const migration of loadMigrations()) {
    if (done.has(migration.version)) continue;
    for (const statement of migration.statements) await executor.exec(statement);
    await executor.insert("schema_migrations", [{ version: migration.version, name: migration.name }]);
    applied.push(migration.version);
  }
  const retentionChanged = await applyRetention(executor, options.retentionDays);
  return { applied, retentionChanged };
}

/** The migrations shipped with this version of Vigil, in order. */
export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations = readdirSync(dir)
    .map((file) => {
      const m = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(file);
      if (!m) return undefined;
      return {
        version: Number(m[1]),
        name: m[2]!,
        statements: splitStatements(readFileSync(`${dir}/${file}`, "utf8")),
      };
    })
    .filter((m): m is Migration => m !== undefined)
    .sort((a, b) => a.version - b.version);
  migrations.forEach((m, i) => {
    if (i > 0 && migrations[i - 1]!.version === m.version) throw new Error(`two migrations have version ${m.version}`);
  });
  return migrations;
}

/**
 * A migration file's statements. ClickHouse servers take one statement a request, so files are
 * split where a line ends with `;`, after dropping whole-line `--` comments. A string literal must
 * not end a line with `;`.
 */
export function splitStatements(sql: string): string[] {
  return sql
    .split("\n")
    .filter((line) => !/^\s*--/.test(line))
    .join("\n")
    .split(/;[ \t]*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Tables whose rows expire, and the time each row expires from. */
const RETENTION = [
  { table: "events", column: "time" },
  { table: "sessions", column: "started_at" },
] as const;

/**
 * Make each table's TTL say `retentionDays` (none when 0). Only when it differs: MODIFY TTL
 * rewrites TTL information in every part, which is not free on a large table.
 */
export async function applyRetention(executor: Executor, retentionDays: number): Promise<boolean> {
  if (!Number.isSafeInteger(retentionDays) || retentionDays < 0) {
    throw new Error(`retentionDays must be a whole number of days, 0 to keep forever (got ${retentionDays})`);
  }
  let changed = false;
  for (const { table, column } of RETENTION) {
    if ((await currentRetention(executor, table)) === retentionDays) continue;
    if (retentionDays === 0) {
      await executor.exec(`ALTER TABLE ${table} REMOVE TTL`);
    } else {
      await executor.exec(`ALTER TABLE ${table} MODIFY TTL toDateTime(${column}) + toIntervalDay({days:UInt32})`, {
        days: retentionDays,
      });
    }
    changed = true;
  }
  return changed;
}

/** The table's TTL in days, read back from its definition; 0 without one. */
export async function currentRetention(executor: Executor, table: string): Promise<number> {
  const [row] = await executor.query<{ engine_full: string }>(
    "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {table:String}",
    { table },
  );
  if (!row) throw new Error(`table ${table} does not exist`);
  // ClickHouse shows the bound value as `toIntervalDay(_CAST(30, 'UInt32'))`.
  const ttl = /\bTTL\b.*?toIntervalDay\((?:_CAST\()?(\d+)/.exec(row.engine_full);
  if (ttl) return Number(ttl[1]);
  return /\bTTL\b/.test(row.engine_full) ? -1 : 0;
}
