import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { Logger } from "../../lib/log.js";

/** How long the initial replay may take before the hub says so (it keeps waiting). */
const SLOW_REPLAY_MS = 10_000;

/**
 * Follow a KV bucket shared by every hub: `apply` sees each record the bucket holds, then every change
 * any hub makes. Resolves, with a stop function, once the records present at start are applied, so a
 * store never answers from a partial copy (a revoked token or a decided approval not yet loaded would
 * otherwise read as unknown).
 */
export async function followBucket(
  kv: KV,
  what: string,
  log: Logger,
  apply: (entry: KvWatchEntry) => void,
): Promise<() => void> {
  const watch = await kv.watch();
  let replayed!: () => void;
  const initial = new Promise<void>((resolve) => (replayed = resolve));
  if ((await kv.status()).values === 0) replayed();
  void (async () => {
    for await (const entry of watch) {
      apply(entry);
      if (entry.delta === 0) replayed(); // the last entry of the initial replay, then every update
    }
  })().catch((err: unknown) => log.error({ err }, `${what} watch ended`));
  const slow = setTimeout(() => log.warn(`${what}: the initial load from NATS is slow; still waiting`), SLOW_REPLAY_MS);
  await initial;
  clearTimeout(slow);
  return () => watch.stop();
}

/** The JSON record a PUT entry holds; undefined (and logged) for one that does not parse. */
export function recordOf<T>(entry: KvWatchEntry, what: string, log: Logger): T | undefined {
  try {
    return entry.json<T>();
  } catch (err) {
    log.error({ key: entry.key, err: (err as Error).message }, `unreadable ${what} record`);
    return undefined;
  }
}
