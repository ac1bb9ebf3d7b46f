import type { RecordingEvent } from "../../../lib/recording/chain.js";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { engineKeepsUp, watchEngineThreads } from "../../../storage/engine-threads.js";
import type { RecordingStore } from "../../../storage/recordings.js";
import type { EventSink } from "../../../relay-agent/src/recording/recorder.js";
import type { LiveFeed } from "./live.js";

/** Gather events this long before one insert: a burst of statements becomes one batch. */
const BATCH_MS = 20;
const BATCH_EVENTS = 10_000;
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

/**
 * `vigil up`'s recording path: the relay in this process hands its events straight to the store,
 * through an in-memory queue that is inserted in batches. No NATS. Events wait in order while the
 * store is failing (retried, never dropped; inserts are idempotent); if the queue outgrows
 * MAX_QUEUED the sink reports not ok, and the relay refuses commands and new sessions.
 */
export class LocalSink implements EventSink {
  private queue: RecordingEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inserting: Promise<void> | undefined;
  /** Events handed to write() so far, and stored so far: flush() waits for the one to reach the other. */
  private written = 0;
  private stored = 0;
  private waiters: { upTo: number; resolve: () => void }[] = [];
  private failing = false;
  private closed = false;
  private behind = false;

  constructor(
    private readonly store: () => Promise<RecordingStore>,
    private readonly live: LiveFeed,
    private readonly log: Logger,
  ) {
    // The data path of this process goes first while the store keeps up (storage/engine-threads.ts).
    watchEngineThreads();
  }

  async ready(): Promise<void> {
    if (!this.ok()) throw new VigilError("recording_unavailable", "the recording store is not taking events");
    await this.store(); // rejects with recording_unavailable when it cannot open
  }

  ok(): boolean {
    return !this.closed && this.queue.length < MAX_QUEUED;
  }

  write(event: RecordingEvent): void {
    if (this.closed) return;
    this.queue.push(event);
    this.written++;
    this.live.publish(event);
    if (this.queue.length >= BATCH_EVENTS) this.kick(0);
    else this.kick(BATCH_MS);
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
    if (this.queue.length > 0) this.log.error({ events: this.queue.length }, "recording events not stored at shutdown");
  }

  private kick(delayMs: number): void {
    if (this.inserting) return; // the running insert schedules the next one
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.insertNext(), delayMs);
  }

  private async insertNext(): Promise<void> {
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const batch = this.queue.slice(0, BATCH_EVENTS);
    const run = (async () => {
      try {
        const store = await this.store();
        // Each event reaches this queue once, so only a retry after a failed (maybe partly done)
        // insert needs the store's lookup of events it already holds.
        await store.insertEvents(batch, { mayBeStored: this.failing });
        this.queue.splice(0, batch.length);
        this.stored += batch.length;
        if (this.failing) this.log.info({ queued: this.queue.length }, "recording store is taking events again");
        this.failing = false;
      } catch (err) {
        if (!this.failing) this.log.error({ err: (err as Error).message }, "recording insert failed; retrying");
        this.failing = true;
      }
    })();
    this.inserting = run;
    await run;
    this.inserting = undefined;
    this.waiters = this.waiters.filter((w) => (w.upTo <= this.stored ? (w.resolve(), false) : true));
    this.behind = this.queue.length >= (this.behind ? CAUGHT_UP_EVENTS : BEHIND_EVENTS);
    engineKeepsUp(!this.behind);
    if (this.queue.length > 0) this.kick(this.failing ? RETRY_MS : 0);
  }
}
