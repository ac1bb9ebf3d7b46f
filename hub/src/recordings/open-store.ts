import { join } from "node:path";
import type { Config } from "../../../lib/config/schema.js";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { openChdb } from "../../../storage/chdb.js";
import { openClickHouse } from "../../../storage/clickhouse.js";
import { RecordingStore } from "../../../storage/recordings.js";

/**
 * The recording store this process uses, opened on first use (loading chDB costs half a second
 * and a hub that never serves a search should not pay it):
 * - embedded storage: chDB under `<storage.embedded.path>/clickhouse`;
 * - `storage.clickhouse.url`: a ClickHouse server; `storage.clickhouse.path`: chDB at that path.
 * Undefined when the config names no store (a NATS hub without `storage.clickhouse`).
 */
export function storeOpener(config: Config, log: Logger): (() => Promise<RecordingStore>) | undefined {
  const { embedded, clickhouse, retentionDays } = config.storage;
  const open = async () => {
    const path = chdbPath(config);
    if (!path) return openClickHouse({ url: clickhouse!.url!, database: clickhouse!.database });
    return openChdb(path);
  };
  if (!embedded && !clickhouse) return undefined;
  let opened: Promise<RecordingStore> | undefined;
  return () => {
    opened ??= open()
      .then((executor) => RecordingStore.open(executor, { retentionDays }))
      .catch((err: Error) => {
        opened = undefined; // try again on the next use
        log.error({ err: err.message }, "recording store unavailable");
        throw new VigilError("recording_unavailable", `the recording store is unavailable: ${err.message}`);
      });
    return opened;
  };
}

/** The chDB data directory of this process's store; undefined when it is a ClickHouse server (or none). */
export function chdbPath(config: Config): string | undefined {
  const { embedded, clickhouse } = config.storage;
  if (clickhouse?.url) return undefined;
  if (clickhouse?.path) return clickhouse.path;
  return embedded ? join(embedded.path, "clickhouse") : undefined;
}
