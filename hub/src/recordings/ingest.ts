import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type Consumer,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { FORMAT_VERSION, RecordingEvent } from "../../../lib/recording/chain.js";
import {
  DEAD_LETTER_SUBJECT,
  ensureRecordingStreams,
  INGEST_CONSUMER,
  RECORDING_STREAM,
  subjectToken,
} from "../../../lib/recording/nats.js";
import type { Logger } from "../../../lib/log.js";
import { readEncodedEvent } from "../../../storage/encoded-event.js";
import { AckAddresses, replyBytes, sendToAll } from "./acks.js";
import { EventBatch } from "../../../storage/event-batch.js";
import type { RecordingStore } from "../../../storage/recordings.js";

/**
 * Up to this many messages become one insert. Every insert has a fixed cost in ClickHouse (~30 ms of
 * CPU in chDB here, a new part to write and later merge) besides its per-row cost: 5,000-row inserts
 * spent ~1.5 µs per event more than 20,000-row ones, and draining a backlog in 40,000-event batches
 * was faster again than in 20,000-event ones (43–51k against 20–42k events/s, two runs each). A
 * batch's payload is ~17 MB.
 */
const BATCH = 40_000;
/** How long arriving messages gather before one insert, when fewer than BATCH came. */
const GATHER_MS = 25;
/**
 * How long a batch may wait to fill up while JetStream has enough messages waiting to fill it (a
 * backlog). Cut when the insert before it ended, the batches of a 300,000-event drain held the
 * ~25,000 events that came during that insert: 14 inserts instead of 8, each with its fixed cost and
 * a part to merge. The bound is for workers that share the consumer, whose half-full batches may
 * together take all of max_ack_pending.
 */
const FILL_MS = 1_000;
/**
 * A message not acked within this is redelivered (to this or another ingest worker): how long
 * events of a worker that died mid-batch wait. Longer than any sane batch insert.
 */
const ACK_WAIT_MS = 15_000;
/** After a failed insert, messages come back after this delay; meanwhile the worker waits too. */
const RETRY_MS = 2_000;
/**
 * Taken and not yet acked, across all workers: one batch inserting and the next one gathering.
 * nats-server writes the consumer's state (every unacked message in it) ten times a second while
 * messages flow; with 160,000 in flight that encoding was a quarter of the server's CPU during a
 * drain, with 80,000 an eighth. Several workers share these (each then gathers smaller batches).
 */
const MAX_ACK_PENDING = BATCH * 2;
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
      const info = await jsm.consumers.info(RECORDING_STREAM, INGEST_CONSUMER);
      if (info.config.max_ack_pending !== MAX_ACK_PENDING) await this.setAckPending(jsm);
    } catch (err) {
      if (!/consumer not found/i.test((err as Error).message)) throw err;
      await jsm.consumers
        .add(RECORDING_STREAM, {
          durable_name: INGEST_CONSUMER,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: ACK_WAIT_MS * 1e6,
          max_ack_pending: MAX_ACK_PENDING,
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

  /**
   * Consumers made by older versions allowed fewer messages in flight than a batch being inserted
   * plus the next one being gathered (or, later, twice that). Ingest works with either, only with
   * less overlap or more server CPU, so a refusal (e.g. a NATS user not allowed to update consumers)
   * is a warning.
   */
  private async setAckPending(jsm: JetStreamManager): Promise<void> {
    try {
      await jsm.consumers.update(RECORDING_STREAM, INGEST_CONSUMER, { max_ack_pending: MAX_ACK_PENDING });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "could not set the ingest consumer's max_ack_pending");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.lagTimer);
    this.stopConsume?.();
    await this.running;
  }

  /**
   * Messages flow in through one `consume()` (JetStream keeps pulls outstanding, up to
   * max_ack_pending unacked). Each is decoded and serialized into the batch being gathered as it
   * arrives, while the previous batch is being inserted (ClickHouse works on its own threads).
   * As soon as BATCH are gathered, or once the previous insert is over and GATHER_MS passed (up to
   * FILL_MS when JetStream has enough waiting to fill the batch), a batch is inserted and then
   * acked: one insert at a time, every ack after its own insert. A failed insert naks the batch (redelivered
   * after RETRY_MS) and the worker waits too.
   */
  private async loop(consumer: Consumer): Promise<void> {
    // A stored batch's buffers are written again by the next batch gathered.
    let spent: Gathered | undefined;
    const next = (): Gathered => {
      const batch = new Gathered(spent);
      spent = undefined;
      return batch;
    };
    let gathering = next();
    const full: Gathered[] = [];
    let wake: (() => void) | undefined;
    // A callback, not the async iterator: no promise and no queue per message.
    const messages = await consumer.consume({
      max_messages: BATCH,
      callback: (m) => {
        gathering.add(m);
        if (gathering.acks.count >= BATCH) {
          full.push(gathering);
          gathering = next();
          wake?.();
        }
      },
    });
    this.stopConsume = () => void messages.stop();
    let storing: Promise<void> = Promise.resolve();
    while (!this.stopped) {
      if (full.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, GATHER_MS);
        });
        wake = undefined;
        if (full.length === 0 && !gathering.ready()) continue;
      }
      // Messages go on gathering until the insert in progress is over.
      await storing;
      let batch = full.shift();
      if (!batch) {
        if (gathering.acks.count === 0) continue;
        batch = gathering;
        gathering = next();
      }
      const stored = batch;
      storing = this.storeBatch(stored).then(() => void (spent = stored));
    }
    await storing;
    await messages.closed().catch(() => {});
  }

  /** Store one batch: insert its events, dead-letter what cannot be read, then ack all. */
  private async storeBatch({ acks, events, dead, redelivered }: Gathered): Promise<void> {
    try {
      if (events.size > 0) {
        const store = await this.store();
        // When every message is a first delivery, no ingest worker can have stored its event yet.
        const { inserted, skipped } = await store.insertBatch(events, { mayBeStored: redelivered });
        this.status.stored += inserted;
        this.status.skipped += skipped;
      }
      // Dead letters are published (and acked by JetStream) before their originals are acked.
      await Promise.all(dead.map((d) => this.deadLetter(d.msg, d.reason)));
    } catch (err) {
      const message = (err as Error).message;
      this.status.lastError = message;
      if (!this.stopped) this.log.warn({ err: message, held: acks.count }, "ingest batch failed; retrying");
      sendToAll(this.nc, acks, NAK_RETRY);
      await sleep(RETRY_MS);
      return;
    }
    sendToAll(this.nc, acks, ACK);
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

/**
 * A batch being gathered: where to ack its messages, their events ready to insert, and what cannot
 * be stored. It keeps a message's reply subject (its ack address, as bytes) and nothing else of it:
 * tens of thousands of messages wait for each insert, and the garbage collector copied every one of
 * them that a batch held, promoting most to the old generation.
 */
class Gathered {
  readonly acks: AckAddresses;
  readonly events: EventBatch;
  readonly dead: { msg: JsMsg; reason: string }[] = [];
  /** Some message was delivered before (to this worker or another): its event may be stored already. */
  redelivered = false;
  /** When the first message came (performance.now()), and the last one's reply subject. */
  private since = 0;
  private lastReply: Uint8Array | undefined;

  /** `spent`: a batch already stored and acked (or nakked), whose buffers this one writes into. */
  constructor(spent?: Gathered) {
    this.acks = new AckAddresses(spent?.acks.spentBuffer());
    this.events = new EventBatch(spent?.events.spentBuffer());
  }

  /**
   * Whether to insert the batch though it is not full: it has messages, and JetStream has too few
   * waiting to fill it, or it waited FILL_MS.
   */
  ready(): boolean {
    if (this.acks.count === 0) return false;
    if (performance.now() - this.since >= FILL_MS) return true;
    const pending = this.lastReply ? pendingAfter(this.lastReply) : -1;
    return pending < BATCH - this.acks.count;
  }

  add(m: JsMsg): void {
    const reply = replyBytes(m);
    if (this.acks.count === 0) this.since = performance.now();
    this.lastReply = reply;
    this.acks.add(reply);
    if (!this.redelivered && deliveryCount(reply) !== 1) this.redelivered = true;
    // Commands, results and output, most events, go into the batch straight from their bytes.
    const read = readEncodedEvent(m.data);
    if (read && subjectNames(m.subject, read.env.sessionId)) return this.events.addRead(read);
    const checked = readEvent(m);
    if (typeof checked === "string") return void this.dead.push({ msg: m, reason: checked });
    try {
      this.events.add(checked);
    } catch (err) {
      this.dead.push({ msg: m, reason: `cannot store the event: ${(err as Error).message}` });
    }
  }
}

const DOT = 0x2e;
/** `$JS.ACK.` */
const JS_ACK = [0x24, 0x4a, 0x53, 0x2e, 0x41, 0x43, 0x4b, 0x2e];

/**
 * How many times JetStream delivered a message, from its reply subject (`replyNumber`). What
 * `JsMsg.redelivered` says, read from the subject's bytes without splitting it and parsing every
 * token of it for each message. Anything else counts as a redelivery (0): the batch is then looked up.
 */
export function deliveryCount(reply: Uint8Array): number {
  const count = replyNumber(reply, COUNT_TOKEN);
  return count < 0 ? 0 : count;
}

/** How many messages JetStream has for the consumer after this one (-1 when the reply does not say). */
export function pendingAfter(reply: Uint8Array): number {
  return replyNumber(reply, PENDING_TOKEN);
}

/** Tokens of a reply subject in its 9-token form (0 is `$JS`). */
const COUNT_TOKEN = 4;
const PENDING_TOKEN = 8;
/** Where the dots of the reply subject being read are. */
const dotAt = new Int32Array(12);

/**
 * A number in a JetStream reply subject, `$JS.ACK.<stream>.<consumer>.<count>.<stream seq>.<consumer
 * seq>.<time>.<pending>` (9 tokens) or, from newer servers, the same with `<domain>.<account>.` after
 * `$JS.ACK.` (11 tokens, 12 with a random one at the end): the token numbered `token` in the first
 * form (two further on in the others), as nats.js's parseInfo reads it; -1 when the subject is not
 * such a reply or the token not a number.
 */
function replyNumber(reply: Uint8Array, token: number): number {
  if (reply.length < JS_ACK.length) return -1;
  for (let i = 0; i < JS_ACK.length; i++) if (reply[i] !== JS_ACK[i]) return -1;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) {
    if (reply[i] !== DOT) continue;
    if (dots === dotAt.length) return -1;
    dotAt[dots++] = i;
  }
  if (dots === 10 || dots === 11) token += 2;
  else if (dots !== 8) return -1;
  const from = dotAt[token - 1]! + 1;
  const to = token < dots ? dotAt[token]! : reply.length;
  if (to <= from) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const digit = reply[i]! - 0x30;
    if (digit < 0 || digit > 9 || n > Number.MAX_SAFE_INTEGER / 10) return -1;
    n = n * 10 + digit;
  }
  return n;
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
  if (event.seq > MAX_SEQ) return `seq ${event.seq} is out of range`;
  if (!subjectNames(m.subject, event.sessionId)) return `subject ${m.subject} does not name session ${event.sessionId}`;
  return event;
}

/** Whether the subject's last token names the session (what a live viewer subscribes to). */
function subjectNames(subject: string, sessionId: string): boolean {
  const token = subjectToken(sessionId);
  return subject === token || subject.endsWith(`.${token}`);
}

const MAX_SEQ = BigInt(Number.MAX_SAFE_INTEGER);

/** JetStream's ack, and a nak asking for redelivery after RETRY_MS (what `JsMsg.ack()` / `nak(RETRY_MS)` send). */
const ACK = new TextEncoder().encode("+ACK");
const NAK_RETRY = new TextEncoder().encode(`-NAK ${JSON.stringify({ delay: RETRY_MS * 1e6 })}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
