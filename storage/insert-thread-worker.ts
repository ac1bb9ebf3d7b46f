// The thread of storage/insert-thread.ts: decodes batches of recorded events and stores them in chDB.
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { openChdb } from "./chdb.js";
import { EventBatch } from "./event-batch.js";
import type { Executor } from "./executor.js";
import { RecordingStore } from "./recordings.js";

export interface InsertRequest {
  op: "insert";
  path: string;
  /** RecordingEvent protobufs back to back; event i ends at ends[i]. */
  bytes: Uint8Array;
  ends: Uint32Array;
  /** InsertOptions.mayBeStored: true only when retrying a failed insert. */
  mayBeStored: boolean;
  /** The nice value for this thread (storage/engine-threads.ts: it yields while the store keeps up). */
  nice: number;
}

export type InsertThreadRequest = { op: "open" | "close"; path: string } | InsertRequest;
export type InsertThreadReply = { id: number; error?: string };

const stores = new Map<string, { executor: Executor; store: RecordingStore }>();
let nice = 0;

async function handle(request: InsertThreadRequest): Promise<void> {
  switch (request.op) {
    case "open": {
      if (stores.has(request.path)) return;
      const executor = await openChdb(request.path);
      stores.set(request.path, { executor, store: RecordingStore.attach(executor) });
      return;
    }
    case "close": {
      const open = stores.get(request.path);
      stores.delete(request.path);
      await open?.executor.close();
      return;
    }
    case "insert": {
      const open = stores.get(request.path);
      if (!open) throw new Error(`no store open at ${request.path}`);
      yieldCpu(request.nice);
      const batch = EventBatch.fromEncoded(request.bytes, request.ends);
      await open.store.insertBatch(batch, { mayBeStored: request.mayBeStored });
      return;
    }
  }
}

/** On Linux, nice applies to the calling thread alone (pid 0 = this thread). */
function yieldCpu(wanted: number): void {
  if (wanted === nice) return;
  nice = wanted;
  try {
    setPriority(0, wanted);
  } catch {
    // raising it back needs root or RLIMIT_NICE (engine-threads.ts): it keeps the value it has
  }
}

parentPort!.on("message", ({ id, request }: { id: number; request: InsertThreadRequest }) => {
  handle(request).then(
    () => parentPort!.postMessage({ id } satisfies InsertThreadReply),
    (err: Error) => parentPort!.postMessage({ id, error: err.message } satisfies InsertThreadReply),
  );
});
