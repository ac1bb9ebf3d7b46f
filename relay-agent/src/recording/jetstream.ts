import { performance } from "node:perf_hooks";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { RecordingEvent } from "../../../lib/recording/chain.js";
import { ensureRecordingStreams, messageId, RECORDING_STREAM, recordingSubject } from "../../../lib/recording/nats.js";
import { Fifo } from "./fifo.js";
import { AckedPublisher, PublishRefused } from "./publisher.js";
import type { EventLoss, EventSink } from "./recorder.js";
import { Spool, type SpoolCursor, type SpoolRecord } from "./spool.js";

export interface JetStreamSinkOptions {
  /** NATS server URL(s). The sink keeps its own connection and reconnects forever. */
  servers: string | string[];
  /** Connection name shown by the NATS server (`vigil-relay-<id>`). */
  name: string;
  /** The relay's network segment: part of every subject. */
  segment: string;
  spool: { dir: string; maxBytes: number; segmentBytes?: number };
  /** When events can be neither published nor spooled: stop sessions (`block`) or count the loss. */
  onFailure: "block" | "continue";
  log: Logger;
  /** `block` only: ok() turned false; running sessions should end now (engines already refuse commands). */
  onUnavailable?: (err: VigilError) => void;
  /** Publishes without an ack after this long count as failed (default 5000 ms). */
  publishTimeoutMs?: number;
  /** Publishes awaiting their ack at once (default 1000). */
  window?: number;
  /** Wait after a failure before publishing again (default 1000 ms). */
  retryMs?: number;
  /** Events held in memory while NATS is slow before they go to the spool (default 100000). */
  maxQueued?: number;
  /** Each direct publish's time from publish to ack, and from write() to ack (benchmarks). */
  onAck?: (ackMs: number, sinceWriteMs: number) => void;
}

/** JetStream API calls (stream checks, last message of a session). */
const API_TIMEOUT_MS = 5000;

/** One event on its way to JetStream. */
interface Outgoing {
  sessionId: string;
  subject: string;
  msgId: string;
  data: Uint8Array;
  seq: bigint;
  /** Written by a session in this process (counts for flush); absent when read back from the spool. */
  session?: SessionState;
  /** Where it lies in the spool, when it came from there. */
  record?: SpoolRecord;
  written: number;
  sent: number;
  issued: number;
  done: boolean;
}

interface SessionState {
  id: string;
  subject: string;
  /** Events written and not yet acked, spooled or given up. */
  outstanding: number;
  waiters: (() => void)[];
  lost?: EventLoss;
}

/**
 * Ships recording events to JetStream, one subject per session, with `Nats-Msg-Id` for dedup.
 *
 * Two modes. `direct`: write() queues in memory and a pump keeps up to `window` publishes awaiting
 * their acks. `spool`: write() appends to the disk spool and the pump publishes from the spool,
 * oldest first; once it has caught up (and every drained event is acked) the files go and the mode
 * is direct again. The sink starts in spool mode, so a spool left by a previous run drains first.
 *
 * Order per session: NATS keeps one connection's publishes in order, so events issued in order are
 * stored in order. When a publish fails (timeout, error, disconnect) the pump stops issuing and
 * waits for every outstanding publish to settle (a "fence"); only then do the failed events go to
 * the spool, ahead of every event not yet sent, so a retry never overtakes a later event. Draining
 * after a failure reads again from the first failed record; re-sent events that were stored after
 * all are dropped by the duplicate window, and events of a session already in the stream (an ack
 * lost longer ago than that window) are skipped by asking the stream for the session's last seq.
 * One case stays out of order: JetStream refusing an event (an error ack, e.g. a transient 503)
 * while accepting later ones of the same session already in flight. The refused event is still
 * sent (it lands after them) and the case is logged as an error.
 */
export class JetStreamSink implements EventSink {
  private mode: "direct" | "spool" = "spool";
  private nc: NatsConnection | undefined;
  private publisher: AckedPublisher | undefined;
  private jsm: JetStreamManager | undefined;
  private connected = false;
  /** Streams checked since the last (re)connect or failure; no publish before. */
  private streamsReady = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private streamsWarned = false;

  private readonly queue = new Fifo<Outgoing>();
  private inflight = 0;
  private issuedCount = 0;
  /** A publish failed (or NATS went away): issue nothing until everything outstanding settled. */
  private fence = false;
  private failed: Outgoing[] = [];

  private drainBuf: Outgoing[] = [];
  /** Drained events in issue order, to know which spool segments are wholly acked. */
  private readonly drainIssued = new Fifo<Outgoing>();
  private reading = false;
  /** The pump wanted more while a read was running. */
  private readAgain = false;
  private releasedSegment = 0;
  /** Bumped on every rewind so a read that started before it is thrown away. */
  private drainEpoch = 0;
  /** Per drain pass: the last seq the stream already holds for a session. */
  private storedSeq = new Map<string, bigint>();
  /** Message ids JetStream explicitly refused: certainly not stored, whatever came after them. */
  private refused = new Set<string>();

  private readonly sessions = new Map<string, SessionState>();
  private outstanding = 0;
  private idleWaiters: (() => void)[] = [];
  private spoolWaiting: { s: SessionState; seq: bigint }[] = [];
  private syncScheduled = false;

  /** Events could be neither published nor spooled, and nothing was kept since. */
  private unavailable = false;
  private lostTotal = 0;
  private lostSinceAvailable = 0;
  private closing: Promise<void> | undefined;
  private closed = false;
  private connecting: Promise<void> | undefined;

  private readonly window: number;
  private readonly publishTimeoutMs: number;
  private readonly retryMs: number;
  private readonly maxQueued: number;
  private readonly spool: Spool;
  private readonly log: Logger;

  constructor(private readonly options: JetStreamSinkOptions) {
    this.window = options.window ?? 1000;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 5000;
    this.retryMs = options.retryMs ?? 1000;
    this.maxQueued = options.maxQueued ?? 100_000;
    this.log = options.log.child({ component: "recording" });
    this.spool = Spool.open(options.spool.dir, {
      maxBytes: options.spool.maxBytes,
      segmentBytes: options.spool.segmentBytes,
      onCorrupt: (file, offset, reason) =>
        this.log.error({ file, offset, reason }, "spooled recording events are damaged; skipping the rest of the file"),
    });
    if (!this.spool.drained)
      this.log.info({ bytes: this.spool.bytes }, "recording spool from an earlier run will drain");
    this.connecting = this.connectLoop();
  }

  /** Events given up for good since start (spool full or failed while NATS was away). */
  get lost(): number {
    return this.lostTotal;
  }

  /** True while events go to the disk spool (NATS away, or the spool still draining). */
  get spooling(): boolean {
    return this.mode === "spool";
  }

  /** Bytes waiting in the disk spool. */
  get spooledBytes(): number {
    return this.spool.bytes;
  }

  ok(): boolean {
    return this.options.onFailure === "continue" || !this.unavailable;
  }

  async ready(sessionId: string): Promise<void> {
    if (this.closed) throw new VigilError("recording_unavailable", "the relay's recorder is closed");
    if (!this.ok()) {
      throw new VigilError(
        "recording_unavailable",
        "recordings can be neither sent to NATS nor spooled on the relay's disk; new sessions are refused",
      );
    }
    this.session(sessionId);
  }

  write(event: RecordingEvent): void {
    const s = this.session(event.sessionId);
    s.outstanding++;
    this.outstanding++;
    if (this.closed) return this.lose(s, event.seq);
    const out: Outgoing = {
      sessionId: event.sessionId,
      subject: s.subject,
      msgId: messageId(event.sessionId, event.seq),
      data: RecordingEvent.encode(event).finish(),
      seq: event.seq,
      session: s,
      written: performance.now(),
      sent: 0,
      issued: 0,
      done: false,
    };
    if (this.mode === "spool") return this.toSpool(out);
    this.queue.push(out);
    if (this.queue.length > this.maxQueued && !this.fence) this.startFence("NATS is too slow; spooling");
    this.pump();
  }

  takeLoss(sessionId: string): EventLoss | undefined {
    const s = this.sessions.get(sessionId);
    if (!s?.lost || this.unavailable) return undefined;
    const loss = s.lost;
    s.lost = undefined;
    return loss;
  }

  async flush(sessionId: string): Promise<void> {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    if (s.outstanding > 0) await new Promise<void>((resolve) => s.waiters.push(resolve));
    // The recorder flushes once, at the session's end: a gap not yet on record stays visible as one.
    if (s.outstanding === 0) this.sessions.delete(sessionId);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- connection ----

  /**
   * Connect, and after a connection drops connect again, forever. The client's own reconnect is
   * off on purpose: it would replay publishes buffered while disconnected on the new connection,
   * where they could be stored ahead of an earlier event lost with the old one. A new connection
   * carries only what the pump issues on it, after the fence put failed events back in order.
   */
  private async connectLoop(): Promise<void> {
    let warned = false;
    while (!this.closed) {
      try {
        const nc = await connect({
          servers: this.options.servers,
          name: this.options.name,
          reconnect: false,
          timeout: 2000,
          // A server that stops answering is noticed within ~30 s, not the default minutes.
          pingInterval: 10_000,
          maxPingOut: 3,
        });
        if (this.closed) return void (await nc.close());
        this.nc = nc;
        this.jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
        this.publisher = new AckedPublisher(nc, this.publishTimeoutMs);
        this.connected = true;
        warned = false;
        this.log.info({ servers: this.options.servers }, "recordings go to NATS");
        this.retry(0);
        await nc.closed();
        this.publisher.close();
        this.connected = false;
        this.streamsReady = false;
        if (this.closed) return;
        this.log.warn("NATS connection lost; recordings are spooled until it is back");
        if (this.mode === "direct" && !this.fence) this.startFence("NATS connection lost");
      } catch (err) {
        this.connected = false;
        if (!warned) this.log.warn({ err: (err as Error).message }, "NATS unreachable; recordings are spooled");
        warned = true;
      }
      await sleep(this.retryMs);
    }
  }

  /** After a (re)connect or a failure: check the streams, then let the pump publish again. */
  private retry(ms: number): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      void (async () => {
        try {
          if (this.connected && this.jsm && !this.streamsReady) {
            await ensureRecordingStreams(this.jsm);
            this.streamsReady = true;
            this.streamsWarned = false;
          }
          this.retryTimer = undefined;
        } catch (err) {
          if (!this.streamsWarned)
            this.log.warn({ err: (err as Error).message }, "recording streams not reachable yet");
          this.streamsWarned = true;
          this.retryTimer = undefined;
          this.retry(this.retryMs);
        }
        this.pump();
      })();
    }, ms);
  }

  // ---- the pump ----

  private pump(): void {
    if (this.fence) {
      if (this.inflight === 0 && !this.reading) this.settle();
      return;
    }
    if (!this.connected || !this.streamsReady || this.retryTimer || this.closed) return;
    if (this.mode === "direct") {
      while (this.inflight < this.window && this.queue.length > 0 && !this.fence) this.issue(this.queue.shift()!);
      return;
    }
    while (this.inflight < this.window && this.drainBuf.length > 0 && !this.fence) {
      const out = this.drainBuf.shift()!;
      this.drainIssued.push(out);
      this.issue(out);
    }
    if (this.drainBuf.length === 0 && !this.fence) void this.refill();
  }

  private issue(out: Outgoing): void {
    this.inflight++;
    out.issued = ++this.issuedCount;
    if (this.options.onAck) out.sent = performance.now();
    this.publisher!.publish(out.subject, out.data, out.msgId, (err) => {
      this.inflight--;
      if (err) {
        if (err instanceof PublishRefused) this.refused.add(out.msgId);
        this.failed.push(out);
        if (!this.fence) this.startFence(`publish failed: ${err.message}`);
      } else {
        out.done = true;
        if (out.session) {
          if (this.options.onAck) {
            const now = performance.now();
            this.options.onAck(now - out.sent, now - out.written);
          }
          this.settled(out.session);
        } else this.released();
      }
      this.pump();
    });
  }

  private startFence(reason: string): void {
    this.fence = true;
    this.log.warn(
      { reason, inflight: this.inflight },
      "recordings: stopped publishing until outstanding publishes settle",
    );
    this.pump();
  }

  /** Everything issued has settled after a failure: put the failed events back in order. */
  private settle(): void {
    this.fence = false;
    this.streamsReady = false;
    const failed = this.failed.sort((a, b) => a.issued - b.issued);
    this.failed = [];
    if (this.mode === "direct") {
      // The spool takes over, in the order events were written: failed ones first, then the queue.
      this.mode = "spool";
      for (const out of failed) this.toSpool(out);
      for (let out = this.queue.shift(); out; out = this.queue.shift()) this.toSpool(out);
    } else {
      // Read again from the first failed record; later ones are re-sent too (duplicates are dropped).
      const first = failed.find((o) => o.record)?.record;
      if (first) this.spool.rewind(first.at);
      this.drainBuf = [];
      this.drainEpoch++;
      this.drainIssued.clear();
      this.storedSeq = new Map();
    }
    this.retry(this.retryMs);
  }

  /** Read the next spooled events; when there are none left, go back to direct publishing. */
  private async refill(): Promise<void> {
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    if (this.mode !== "spool") return;
    if (this.spool.drained) return this.caughtUp();
    this.reading = true;
    this.readAgain = false;
    const epoch = this.drainEpoch;
    let records: SpoolRecord[] = [];
    try {
      records = await this.spool.read(this.window);
      const events = records.map((record) => ({ record, event: RecordingEvent.decode(record.payload) }));
      await this.lookUpStored(events.map((e) => e.event));
      if (epoch !== this.drainEpoch) return;
      for (const { record, event } of events) {
        const out: Outgoing = {
          sessionId: event.sessionId,
          subject: recordingSubject(this.options.segment, event.sessionId),
          msgId: messageId(event.sessionId, event.seq),
          data: record.payload,
          seq: event.seq,
          record,
          written: 0,
          sent: 0,
          issued: 0,
          done: false,
        };
        if (event.seq <= (this.storedSeq.get(event.sessionId) ?? -1n)) {
          if (!this.refused.has(out.msgId)) {
            // In the stream already (its ack was lost): sent again after the duplicate window it would be stored twice.
            out.done = true;
            this.drainIssued.push(out);
            continue;
          }
          this.log.error(
            { session: event.sessionId, seq: String(event.seq) },
            "JetStream refused a recording event after accepting later ones of its session; it is stored out of order",
          );
        }
        this.drainBuf.push(out);
      }
      this.released();
    } catch (err) {
      // Those records were not queued: read them again on the next try.
      if (records[0] && epoch === this.drainEpoch) this.spool.rewind(records[0].at);
      this.log.warn({ err: (err as Error).message }, "draining the recording spool failed");
      this.retry(this.retryMs);
    } finally {
      this.reading = false;
    }
    // With nothing durable to read yet, the next spool sync starts the pump again.
    if (records.length > 0 || this.readAgain || this.fence) this.pump();
  }

  /** The last seq the stream holds for each session not asked about yet in this drain pass. */
  private async lookUpStored(events: RecordingEvent[]): Promise<void> {
    const ids = [...new Set(events.map((e) => e.sessionId))].filter((id) => !this.storedSeq.has(id));
    await Promise.all(
      ids.map(async (id) => {
        const last_by_subj = recordingSubject(this.options.segment, id);
        const msg = await this.jsm!.streams.getMessage(RECORDING_STREAM, { last_by_subj });
        this.storedSeq.set(id, msg ? RecordingEvent.decode(msg.data).seq : -1n);
      }),
    );
  }

  /** Delete the spool segments whose every event is acked. */
  private released(): void {
    let upTo: SpoolCursor | undefined;
    while (this.drainIssued.peek()?.done) upTo = this.drainIssued.shift()!.record!.next;
    // Only a move into a later segment can free a file.
    if (!upTo || upTo.segment === this.releasedSegment) return;
    this.releasedSegment = upTo.segment;
    void this.spool.release(upTo).catch((err: Error) => this.log.warn({ err: err.message }, "spool cleanup failed"));
    this.available();
  }

  private caughtUp(): void {
    if (this.inflight > 0 || this.drainIssued.length > 0 || this.drainBuf.length > 0 || this.fence) return;
    if (this.spoolWaiting.length > 0) return;
    this.mode = "direct";
    this.storedSeq = new Map();
    this.refused = new Set();
    void this.spool.clear().catch((err: Error) => this.log.warn({ err: err.message }, "spool cleanup failed"));
    this.log.info("recording spool drained; publishing directly");
    this.available();
    this.pump();
  }

  // ---- spool and loss ----

  private toSpool(out: Outgoing): void {
    const s = out.session!;
    if (!this.spool.append(out.data)) return this.lose(s, out.seq);
    this.available();
    this.spoolWaiting.push({ s, seq: out.seq });
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      const batch = this.spoolWaiting;
      this.spoolWaiting = [];
      this.spool.sync().then(
        () => {
          for (const w of batch) this.settled(w.s);
          this.pump();
        },
        (err: Error) => {
          this.log.error({ err: err.message }, "recording spool write failed");
          for (const w of batch) this.lose(w.s, w.seq);
        },
      );
    });
  }

  private lose(s: SessionState, seq: bigint): void {
    this.lostTotal++;
    this.lostSinceAvailable++;
    if (s.lost) {
      s.lost.events++;
      s.lost.lastSeq = seq;
    } else s.lost = { events: 1, firstSeq: seq, lastSeq: seq };
    this.settled(s);
    if (this.unavailable) return;
    this.unavailable = true;
    if (this.closed) return this.log.warn({ session: s.id, seq }, "recording event written after the recorder closed");
    const reason = this.spool.error
      ? `the spool failed: ${this.spool.error.message}`
      : `the spool is full (${this.spool.bytes} of ${this.spool.maxBytes} bytes)`;
    this.log.error(
      { onFailure: this.options.onFailure },
      `recording events are being lost: NATS is unreachable and ${reason}`,
    );
    if (this.options.onFailure === "block") {
      this.options.onUnavailable?.(
        new VigilError("recording_unavailable", `session ended: its recording cannot be kept (${reason})`),
      );
    }
  }

  /** Events can be kept again (published or spooled). */
  private available(): void {
    if (!this.unavailable) return;
    if (this.mode === "spool" && (this.spool.error || this.spool.bytes >= this.spool.maxBytes)) return;
    this.unavailable = false;
    this.log.warn({ lost: this.lostSinceAvailable }, "recording events can be kept again");
    this.lostSinceAvailable = 0;
  }

  private settled(s: SessionState): void {
    s.outstanding--;
    this.outstanding--;
    if (s.outstanding === 0) for (const w of s.waiters.splice(0)) w();
    if (this.outstanding === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private session(id: string): SessionState {
    let s = this.sessions.get(id);
    if (!s) {
      s = { id, subject: recordingSubject(this.options.segment, id), outstanding: 0, waiters: [] };
      this.sessions.set(id, s);
    }
    return s;
  }

  private async shutdown(): Promise<void> {
    // Every event written so far ends acked or spooled; later writes are counted as lost.
    if (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    // Drained events still in flight: wait for them, so the spool is not read twice needlessly.
    const deadline = Date.now() + this.publishTimeoutMs + 1000;
    while ((this.inflight > 0 || this.reading) && Date.now() < deadline) await sleep(10);
    await this.spool.close();
    await this.nc?.close();
    await this.connecting;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
