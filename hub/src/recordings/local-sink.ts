import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { encodeChained, RecordingEvent } from "../../../lib/recording/chain.js";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { ENGINE_NICE_YIELDING, engineKeepsUp, watchEngineThreads } from "../../../storage/engine-threads.js";
import { EventBatch } from "../../../storage/event-batch.js";
import { InsertThread } from "../../../storage/insert-thread.js";
import type { RecordingStore } from "../../../storage/recordings.js";
import type { EventSink } from "../../../relay-agent/src/recording/recorder.js";
import type { LiveFeed } from "./live.js";

/**
 * Gather events this long before one insert: a burst of statements becomes one batch. Every insert
 * costs chDB a fixed ~25 ms of CPU (new parts for events and sessions, the text index of the events
 * part) and makes parts that its threads merge later: at 20 ms a single busy session made 50 inserts
 * a second, and at 250 ms storing pgbench -S's events (12,000 a second) still cost 44 µs of CPU per
 * event against 26–28 µs at 1 s (bench/store-probe.ts). Session ends are stored at once (flush), and
 * the live view does not wait for inserts.
 */
const BATCH_MS = 1_000;
const BATCH_EVENTS = 20_000;
/** Events held while the store refuses inserts; beyond this the relay stops taking sessions. */
const MAX_QUEUED = 200_000;
/**
 * Queued events beyond which the embedded store stops yielding the CPU to the data path (its
 * threads back at normal priority), well below MAX_QUEUED; it yields again once caught up.
 */
const BEHIND_EVENTS = 40_000;
const CAUGHT_UP_EVENTS = 10_000;
const RETRY_MS = 1_000;
const CLOSE_WAIT_MS = 10_000;
/** The first buffer of a batch's encoded events (~300 bytes an event); it doubles as needed. */
const CHUNK_BYTES = 64 * 1024;

/** Where batches of encoded events go: the insert thread (chDB), or the store on this thread (a server). */
interface Inserter {
  insert(request: { bytes: Uint8Array; ends: Uint32Array; mayBeStored: boolean; nice: number }): Promise<void>;
  ok(): boolean;
  close(): Promise<void>;
}

/** Events encoded back to back as they are written, waiting for one insert. */
interface Chunk {
  bytes: Buffer;
  used: number;
  ends: number[];
  /** When its first event came (performance.now()): the chunk is inserted BATCH_MS after. */
  since: number;
}

/**
 * `vigil up`'s recording path: the relay in this process hands its events straight to the store,
 * through an in-memory queue that is inserted in batches. No NATS. Each event is encoded (protobuf)
 * as it is written; the batches go to a thread of their own that builds the rows and calls chDB
 * (storage/insert-thread.ts), so none of that runs on the data path's thread. Events wait in order
 * while the store is failing (retried, never dropped; inserts are idempotent); if the queue outgrows
 * MAX_QUEUED or the insert thread is gone, the sink reports not ok, and the relay refuses commands
 * and new sessions.
 */
export class LocalSink implements EventSink {
  private readonly chunks: Chunk[] = [];
  private readonly writer = new BinaryWriter();
  private inserter: Promise<Inserter> | undefined;
  private opened: Inserter | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inserting: Promise<void> | undefined;
  /** The chunk whose insert is running: new events go to a fresh one. */
  private sending: Chunk | undefined;
  /** Events handed to write() so far, and stored so far: flush() waits for the one to reach the other. */
  private written = 0;
  private stored = 0;
  private waiters: { upTo: number; resolve: () => void }[] = [];
  private failing = false;
  private closed = false;
  private behind = false;

  /** `chdbPath`: the embedded store's data directory, written from the insert thread; undefined for a server. */
  constructor(
    private readonly store: () => Promise<RecordingStore>,
    private readonly live: LiveFeed,
    private readonly log: Logger,
    private readonly chdbPath?: string,
    /** How long events gather before one insert (BATCH_MS; tests shorten or lengthen it). */
    private readonly batchMs = BATCH_MS,
  ) {
    // The data path of this process goes first while the store keeps up (storage/engine-threads.ts).
    watchEngineThreads();
  }

  async ready(): Promise<void> {
    if (!this.ok()) throw new VigilError("recording_unavailable", "the recording store is not taking events");
    await this.openInserter(); // rejects with recording_unavailable when it cannot open
  }

  ok(): boolean {
    return !this.closed && this.written - this.stored < MAX_QUEUED && (this.opened?.ok() ?? true);
  }

  write(event: RecordingEvent, hashed?: Uint8Array): void {
    if (this.closed) return;
    const encoded = hashed ? encodeChained(event, hashed) : RecordingEvent.encode(event, this.writer).finish();
    let chunk = this.chunks.at(-1);
    if (!chunk || chunk.ends.length >= BATCH_EVENTS || chunk === this.sending) {
      chunk = {
        bytes: Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, encoded.length)),
        used: 0,
        ends: [],
        since: performance.now(),
      };
      this.chunks.push(chunk);
    }
    if (chunk.used + encoded.length > chunk.bytes.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(chunk.used + encoded.length, chunk.bytes.length * 2));
      chunk.bytes.copy(bigger, 0, 0, chunk.used);
      chunk.bytes = bigger;
    }
    chunk.bytes.set(encoded, chunk.used);
    chunk.used += encoded.length;
    chunk.ends.push(chunk.used);
    this.written++;
    this.live.publish(event);
    if (chunk.ends.length >= BATCH_EVENTS) this.kick(0);
    else this.kick(this.batchMs);
  }

  flush(): Promise<void> {
    if (this.stored >= this.written) return Promise.resolve();
    const upTo = this.written;
    this.kick(0);
    return new Promise((resolve) => this.waiters.push({ upTo, resolve }));
  }

  /** Store what is queued; give up after CLOSE_WAIT_MS of a failing store, saying how much is lost. */
  async close(): Promise<void> {
    if (this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    this.closed = true;
    clearTimeout(this.timer);
    await this.inserting;
    await this.opened?.close();
    const lost = this.written - this.stored;
    if (lost > 0) this.log.error({ events: lost }, "recording events not stored at shutdown");
  }

  private openInserter(): Promise<Inserter> {
    this.inserter ??= (async () => {
      const store = await this.store(); // migrates the schema first
      const inserter: Inserter = this.chdbPath
        ? await InsertThread.open(this.chdbPath).catch((err: Error) => {
            throw new VigilError("recording_unavailable", `the recording store is unavailable: ${err.message}`);
          })
        : storeOnThisThread(store);
      this.opened = inserter;
      return inserter;
    })().catch((err: Error) => {
      this.inserter = undefined; // try again on the next session
      throw err;
    });
    return this.inserter;
  }

  private kick(delayMs: number): void {
    if (this.inserting) return; // the running insert schedules the next one
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.insertNext(), delayMs);
  }

  private async insertNext(): Promise<void> {
    this.timer = undefined;
    const chunk = this.chunks[0];
    if (!chunk || chunk.ends.length === 0) return;
    this.sending = chunk;
    const run = (async () => {
      try {
        const inserter = await this.openInserter();
        // Copies: the chunk stays queued until stored, and a transferred buffer is gone from here.
        const bytes = new Uint8Array(chunk.bytes.subarray(0, chunk.used));
        // Each event reaches this queue once, so only a retry after a failed (maybe partly done)
        // insert needs the store's lookup of events it already holds.
        await inserter.insert({
          bytes,
          ends: Uint32Array.from(chunk.ends),
          mayBeStored: this.failing,
          nice: this.behind ? 0 : ENGINE_NICE_YIELDING,
        });
        this.chunks.shift();
        this.stored += chunk.ends.length;
        if (this.failing)
          this.log.info({ queued: this.written - this.stored }, "recording store is taking events again");
        this.failing = false;
      } catch (err) {
        if (!this.failing) this.log.error({ err: (err as Error).message }, "recording insert failed; retrying");
        this.failing = true;
      }
    })();
    this.inserting = run;
    await run;
    this.inserting = undefined;
    this.sending = undefined;
    this.waiters = this.waiters.filter((w) => (w.upTo <= this.stored ? (w.resolve(), false) : true));
    const queued = this.written - this.stored;
    this.behind = queued >= (this.behind ? CAUGHT_UP_EVENTS : BEHIND_EVENTS);
    engineKeepsUp(!this.behind);
    if (queued > 0 && !this.closed) this.kick(this.failing ? RETRY_MS : this.nextDelay());
  }

  /**
   * How long the next chunk may still gather: at once when it is full, behind, or someone waits for
   * it (a session's end); otherwise until BATCH_MS after its first event. Going at once after every
   * insert would make inserts back to back under steady load (several a second, each a part for
   * chDB to merge: 22 µs of merge CPU per event under pgbench -S, against 8 at one a second).
   */
  private nextDelay(): number {
    const next = this.chunks[0];
    if (!next || next.ends.length >= BATCH_EVENTS || this.behind || this.waiters.length > 0) return 0;
    return Math.max(0, next.since + this.batchMs - performance.now());
  }
}

/** A ClickHouse server does its work in its own process: the rows are built on this thread. */
function storeOnThisThread(store: RecordingStore): Inserter {
  return {
    ok: () => true,
    close: async () => {},
    insert: async ({ bytes, ends, mayBeStored }) => {
      await store.insertBatch(EventBatch.fromEncoded(bytes, ends), { mayBeStored });
    },
  };
}
