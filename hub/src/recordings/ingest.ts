import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type JetStreamClient,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { FORMAT_VERSION, RecordingEvent } from "../../../lib/recording/chain.js";
import {
  DEAD_LETTER_SUBJECT,
  ensureRecordingStreams,
  INGEST_CONSUMER,
  RECORDING_STREAM,
  sessionSubjects,
} from "../../../lib/recording/nats.js";
import type { Logger } from "../../../lib/log.js";
import type { RecordingStore } from "../../../storage/recordings.js";

/** Up to this many messages become one insert. */
const BATCH = 5_000;
/** How long arriving messages gather before one insert, when fewer than BATCH came. */
const GATHER_MS = 25;
/**
 * A message not acked within this is redelivered (to this or another ingest worker): how long
 * events of a worker that died mid-batch wait. Longer than any sane batch insert.
 */
const ACK_WAIT_MS = 15_000;
/** After a failed insert, messages come back after this delay; meanwhile the worker waits too. */
const RETRY_MS = 2_000;
const LAG_EVERY_MS = 5_000;

export interface IngestStatus {
  /** Events stored in ClickHouse by this worker since it started. */
  stored: number;
  /** Events already in the store when they arrived again (redelivery), skipped. */
  skipped: number;
  /** Messages moved to the dead-letter subject. */
  deadLettered: number;
  /** Messages in the stream not yet taken by any ingest worker, plus those taken and not yet acked. */
  lag: number | undefined;
  lastError?: string;
}

/**
 * The ingest worker: a durable pull consumer on the recording stream, shared by every worker (in
 * hubs or `vigil ingest`), that stores events in ClickHouse in batches and acks only after the
 * insert. A crash before the ack means redelivery; the store skips events it already holds, so
 * nothing is lost and nothing is stored twice. Messages that are not RecordingEvents go to the
 * dead-letter subject with the reason, and are acked there, so one bad message never stalls ingest.
 */
export class Ingest {
  readonly status: IngestStatus = { stored: 0, skipped: 0, deadLettered: 0, lag: undefined };
  private stopped = false;
  private stopConsume: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private js: JetStreamClient;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: () => Promise<RecordingStore>,
    private readonly log: Logger,
  ) {
    this.js = jetstream(nc);
  }

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await ensureRecordingStreams(jsm);
    try {
      await jsm.consumers.info(RECORDING_STREAM, INGEST_CONSUMER);
    } catch {
      await jsm.consumers
        .add(RECORDING_STREAM, {
          durable_name: INGEST_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: ACK_WAIT_MS * 1e6,
          max_ack_pending: BATCH * 4,
        })
        .catch((err: Error) => {
          if (!/already in use|already exists/i.test(err.message)) throw err;
        });
    }
    const consumer = await this.js.consumers.get(RECORDING_STREAM, INGEST_CONSUMER);
    this.running = this.loop(consumer);
    this.lagTimer = setInterval(() => void this.measureLag(consumer), LAG_EVERY_MS);
    this.lagTimer.unref();
    void this.measureLag(consumer);
    this.log.info({ stream: RECORDING_STREAM, consumer: INGEST_CONSUMER }, "ingest started");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    this.stopConsume?.();
    await this.running;
  }

  /**
   * Messages flow in through one `consume()` (JetStream keeps pulls outstanding, up to
   * max_ack_pending unacked); every GATHER_MS, or as soon as BATCH are waiting, they are stored
   * together and acked. A failed insert naks the batch (redelivered after RETRY_MS) and waits too.
   */
  private async loop(consumer: Consumer): Promise<void> {
    const messages = await consumer.consume({ max_messages: BATCH });
    this.stopConsume = () => void messages.stop();
    let waiting: JsMsg[] = [];
    let full: (() => void) | undefined;
    const received = (async () => {
      for await (const m of messages) {
        waiting.push(m);
        if (waiting.length >= BATCH) full?.();
      }
    })();
    while (!this.stopped) {
      if (waiting.length < BATCH) {
        await new Promise<void>((resolve) => {
          full = resolve;
          setTimeout(resolve, GATHER_MS);
        });
        full = undefined;
      }
      if (waiting.length === 0) continue;
      const batch = waiting.length <= BATCH ? waiting : waiting.slice(0, BATCH);
      waiting = waiting.length <= BATCH ? [] : waiting.slice(BATCH);
      try {
        await this.ingest(batch);
      } catch (err) {
        const message = (err as Error).message;
        this.status.lastError = message;
        if (!this.stopped) this.log.warn({ err: message, held: batch.length }, "ingest batch failed; retrying");
        for (const m of batch) m.nak(RETRY_MS);
        await sleep(RETRY_MS);
      }
    }
    await received.catch(() => {});
  }

  /** Store one batch: dead-letter what cannot be read, insert the rest, then ack all. */
  private async ingest(batch: JsMsg[]): Promise<void> {
    const events: RecordingEvent[] = [];
    const dead: { msg: JsMsg; reason: string }[] = [];
    for (const m of batch) {
      const checked = readEvent(m);
      if (typeof checked === "string") dead.push({ msg: m, reason: checked });
      else events.push(checked);
    }
    if (events.length > 0) {
      const store = await this.store();
      const { inserted, skipped } = await store.insertEvents(events);
      this.status.stored += inserted;
      this.status.skipped += skipped;
    }
    // Dead letters are published (and acked by JetStream) before their originals are acked.
    await Promise.all(dead.map((d) => this.deadLetter(d.msg, d.reason)));
    for (const m of batch) m.ack();
  }

  private async deadLetter(msg: JsMsg, reason: string): Promise<void> {
    const h = headers();
    h.set("Vigil-Reason", reason);
    h.set("Vigil-Subject", msg.subject);
    h.set("Vigil-Stream-Seq", String(msg.seq));
    await this.js.publish(DEAD_LETTER_SUBJECT, msg.data, { headers: h });
    this.status.deadLettered++;
    this.log.warn({ subject: msg.subject, seq: msg.seq, reason }, "recording message dead-lettered");
  }

  private async measureLag(consumer: Consumer): Promise<void> {
    try {
      const info = await consumer.info(false);
      this.status.lag = info.num_pending + info.num_ack_pending;
      if (this.status.lag > BATCH * 10) this.log.warn({ lag: this.status.lag }, "ingest is behind");
    } catch {
      // NATS away: lag stays at its last value; the fetch loop reports the error.
    }
  }
}

/** The event in a message, or why it is not a valid one. */
export function readEvent(m: { subject: string; data: Uint8Array }): RecordingEvent | string {
  let event: RecordingEvent;
  try {
    event = RecordingEvent.decode(m.data);
  } catch (err) {
    return `not a RecordingEvent: ${(err as Error).message}`;
  }
  // Protobuf decodes many byte strings without complaint; a real event has at least these two.
  if (event.version === 0 && !event.sessionId) return "not a RecordingEvent: no version and no session_id";
  if (event.version !== FORMAT_VERSION) return `unknown recording format version ${event.version}`;
  if (!event.sessionId) return "event has no session_id";
  if (!event.body) return "event has no body";
  if (event.hash.length !== 32) return `hash is ${event.hash.length} bytes, not 32`;
  if (event.seq > BigInt(Number.MAX_SAFE_INTEGER)) return `seq ${event.seq} is out of range`;
  const expected = sessionSubjects(event.sessionId).split(".").pop();
  if (m.subject.split(".").pop() !== expected) {
    return `subject ${m.subject} does not name session ${event.sessionId}`;
  }
  return event;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
