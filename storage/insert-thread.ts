import { Worker } from "node:worker_threads";
import { VigilError } from "../lib/errors.js";
import type { InsertRequest, InsertThreadRequest, InsertThreadReply } from "./insert-thread-worker.js";

/**
 * Recorded events stored into the embedded ClickHouse (chDB) from a thread of their own. Under
 * `vigil up` the data path (front doors, relay engines) runs on the main thread; building the
 * insert payload (proto3 JSON of each body, session summaries) and calling chDB there held it for a
 * millisecond or more per batch, which queries in flight waited out, and cost it CPU per statement.
 * The main thread now only appends each event's protobuf (the bytes the hash chain encoded) to a
 * batch and hands batches of bytes over.
 *
 * chDB binds one data directory per process and serves every thread of it from one engine, so the
 * thread opens its own session on the same path as the hub's store. The engine does not survive a
 * thread that loaded it ending (the thread's native cleanup shuts it down for the whole process):
 * the thread is therefore started once and kept for the life of the process (unref'd while no reply
 * is due), and closing a store closes its session, not the thread.
 */
export class InsertThread {
  private closed = false;

  private constructor(private readonly path: string) {}

  /** Open a session on the chDB data directory `path` (its schema is migrated already) in the thread. */
  static async open(path: string): Promise<InsertThread> {
    await call({ op: "open", path });
    return new InsertThread(path);
  }

  /** Whether the thread is alive: once it is gone, events can no longer be stored (fail closed). */
  ok(): boolean {
    return !this.closed && !failure;
  }

  /**
   * Store events encoded as RecordingEvent protobufs, back to back in `bytes`, event i ending at
   * `ends[i]`. The buffers are handed to the thread (transferred, not copied).
   */
  insert(request: Omit<InsertRequest, "op" | "path">): Promise<void> {
    if (this.closed) return Promise.reject(new VigilError("internal", "the insert thread is closed"));
    return call({ op: "insert", path: this.path, ...request }, [
      request.bytes.buffer as ArrayBuffer,
      request.ends.buffer as ArrayBuffer,
    ]);
  }

  /** Close the thread's session (after its running insert): the data directory is free of it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!failure) await call({ op: "close", path: this.path });
  }
}

let worker: Worker | undefined;
let failure: Error | undefined;
let nextId = 1;
const waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();

function call(request: InsertThreadRequest, transfer: ArrayBuffer[] = []): Promise<void> {
  if (failure) return Promise.reject(failure);
  const w = (worker ??= startWorker());
  const id = nextId++;
  // Ref'd while a reply is due (a pending insert keeps the process alive), unref'd when idle.
  if (waiting.size === 0) w.ref();
  return new Promise<void>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.postMessage({ id, request }, transfer);
  });
}

function startWorker(): Worker {
  const w = new Worker(new URL("./insert-thread-entry.js", import.meta.url), { stdout: false, stderr: false });
  w.on("message", (reply: InsertThreadReply) => {
    const waiter = waiting.get(reply.id);
    if (!waiter) return;
    waiting.delete(reply.id);
    if (waiting.size === 0) w.unref();
    if (reply.error === undefined) waiter.resolve();
    else waiter.reject(new VigilError("recording_unavailable", reply.error));
  });
  const fail = (err: Error) => {
    failure ??= new VigilError("recording_unavailable", `the recording insert thread ended: ${err.message}`, {
      cause: err,
    });
    for (const waiter of waiting.values()) waiter.reject(failure);
    waiting.clear();
  };
  w.on("error", fail);
  w.on("exit", (code) => fail(new Error(`exit code ${code}`)));
  // After the listeners: adding a "message" listener refs the thread again.
  w.unref();
  return w;
}
