import { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { encodedRowBytes, readEncodedEvent, writeEncodedRow, type EncodedEvent } from "./encoded-event.js";
import { resultHasError } from "./result-row.js";
import { eventRow } from "./rows.js";
import { SessionRows, type SessionRow } from "./session-rows.js";

/** The first payload buffer; it grows fourfold as needed (a 40,000-event batch of commands is ~13 MB). */
const INITIAL_BYTES = 1 << 20;

/**
 * Events on their way into one insert, serialized as they are added. Ingest adds each event as its
 * message arrives, while the previous batch is being inserted. The batch keeps the insert payload
 * (RowBinary rows: `eventRow`, or `writeEncodedRow` straight from a command, result or output
 * event's protobuf bytes) as bytes outside the JS heap and, per event, only numbers:
 * the decoded events die young, and a batch of 40,000 costs the garbage collector next to nothing.
 */
export class EventBatch {
  /** Whether some event is in the batch twice (a re-publish after JetStream's duplicate window). */
  repeats = false;
  /** The earliest and latest event time: a stored copy of an event has the event's own time. */
  firstUs = 0n;
  lastUs = 0n;
  private payload: Buffer;
  private bytes = 0;
  /** Per event: where its row ends in the payload, its session (index into `sessions`) and seq. */
  private readonly ends: number[] = [];
  private readonly sessionOf: number[] = [];
  private readonly seqOf: number[] = [];
  private readonly sessions: { id: string; lo: number; hi: number; seqs: Set<number> }[] = [];
  private readonly sessionIndex = new Map<string, number>();
  private readonly summaries = new SessionRows();

  /**
   * `reuse`: the payload buffer of a batch whose insert is over (`spentBuffer`), to write into
   * instead of a new one. A 40,000-event batch's payload grew from 1 to 64 MB, allocating 85 MB
   * and copying 21 MB, for every batch.
   */
  constructor(reuse?: Buffer) {
    this.payload = reuse ?? Buffer.allocUnsafe(INITIAL_BYTES);
  }

  /** The payload buffer for the next batch (`reusable`). Call only once this batch's rows are no longer used. */
  spentBuffer(): Buffer | undefined {
    return reusable(this.payload, this.bytes);
  }

  get size(): number {
    return this.ends.length;
  }

  /** Add one event; throws, adding nothing, when it cannot be stored (no body, a hash not 32 bytes). */
  add(ev: RecordingEvent): void {
    this.addRow(ev.sessionId, Number(ev.seq), ev.timeUs, eventRow(ev));
    this.summaries.add(ev);
  }

  /** Add an event that `readEncodedEvent` read from its bytes (ingest's way for most events). */
  addRead(ev: EncodedEvent): void {
    const { sessionId, seq, timeUs } = ev.env;
    this.place(sessionId, seq, timeUs);
    this.reserve(encodedRowBytes(ev));
    this.bytes = writeEncodedRow(ev, this.payload, this.bytes);
    this.ends.push(this.bytes);
    if (ev.type === "command") this.summaries.addCommand(sessionId, seq, timeUs, ev.command, ev.decision);
    else this.summaries.addEvent(sessionId, seq, timeUs, ev.type === "result" && resultHasError(ev));
  }

  /**
   * A batch of events given as protobufs back to back in `bytes`, event i ending at `ends[i]`, as this
   * process's own relay encoded them (`vigil up`'s local sink): commands, results and output straight
   * from their bytes, the others decoded. Ingest, which takes bytes from anyone on the subject,
   * checks each message first (readEvent) and uses `add`/`addRead`.
   */
  static fromEncoded(bytes: Uint8Array, ends: ArrayLike<number>): EventBatch {
    const batch = new EventBatch();
    let start = 0;
    for (let i = 0; i < ends.length; i++) {
      batch.addEncoded(bytes.subarray(start, ends[i]));
      start = ends[i]!;
    }
    return batch;
  }

  /** Add one event from its protobuf bytes (see fromEncoded). */
  addEncoded(bytes: Uint8Array): void {
    const read = readEncodedEvent(bytes);
    if (read) this.addRead(read);
    else this.add(RecordingEvent.decode(bytes));
  }

  private addRow(sessionId: string, seq: number, timeUs: bigint, row: Buffer): void {
    this.place(sessionId, seq, timeUs);
    this.reserve(row.length);
    this.bytes += row.copy(this.payload, this.bytes);
    this.ends.push(this.bytes);
  }

  /** Take in an event's session, seq and time; its row is written next. */
  private place(sessionId: string, seq: number, timeUs: bigint): void {
    let index = this.sessionIndex.get(sessionId);
    if (index === undefined) {
      index = this.sessions.push({ id: sessionId, lo: seq, hi: seq, seqs: new Set() }) - 1;
      this.sessionIndex.set(sessionId, index);
    }
    const session = this.sessions[index]!;
    if (session.seqs.has(seq)) this.repeats = true;
    session.seqs.add(seq);
    if (seq < session.lo) session.lo = seq;
    if (seq > session.hi) session.hi = seq;
    if (this.ends.length === 0 || timeUs < this.firstUs) this.firstUs = timeUs;
    if (this.ends.length === 0 || timeUs > this.lastUs) this.lastUs = timeUs;
    this.sessionOf.push(index);
    this.seqOf.push(seq);
  }

  /** The batch's sessions, each with the lowest and highest seq it has in the batch. */
  sessionRanges(): { id: string; lo: number; hi: number }[] {
    return this.sessions.map(({ id, lo, hi }) => ({ id, lo, hi }));
  }

  /** The batch's partial session summaries: one row per session. */
  sessionRows(): SessionRow[] {
    return this.summaries.rows();
  }

  /**
   * The insert payload: every event once, leaving out those `skip` says are stored (it gets
   * `session\0seq`). Returns the rows and how many events they hold.
   */
  rows(skip?: (key: string) => boolean): { payload: Buffer; events: number } {
    if (!skip && !this.repeats) return { payload: this.payload.subarray(0, this.bytes), events: this.ends.length };
    const parts: Buffer[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < this.ends.length; i++) {
      const key = `${this.sessions[this.sessionOf[i]!]!.id}\0${this.seqOf[i]}`;
      if (seen.has(key) || skip?.(key)) continue;
      seen.add(key);
      parts.push(this.payload.subarray(i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!));
    }
    return { payload: Buffer.concat(parts), events: parts.length };
  }

  /** Room for `more` bytes after the payload written so far. */
  private reserve(more: number): void {
    const need = this.bytes + more;
    if (need > this.payload.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.payload.length * 4));
      this.payload.copy(bigger, 0, 0, this.bytes);
      this.payload = bigger;
    }
  }
}

export function eventBatch(events: readonly RecordingEvent[]): EventBatch {
  const batch = new EventBatch();
  for (const ev of events) batch.add(ev);
  return batch;
}

/**
 * A spent batch's buffer, to be written again by the next batch, when `used` filled a quarter of it
 * or more: a trickle of small batches after a burst does not keep the burst's buffer alive.
 */
export function reusable(buffer: Buffer, used: number): Buffer | undefined {
  return used * 4 >= buffer.length ? buffer : undefined;
}
