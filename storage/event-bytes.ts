import { isUtf8 } from "node:buffer";
import { FORMAT_VERSION } from "../lib/recording/chain.js";

/** A field's bytes in the message: [start, end). */
export type Span = [number, number];

/**
 * A RecordingEvent's own fields as read from its protobuf bytes (storage/encoded-event.ts reads its
 * body): the values a batch keeps (session, seq, time) and where the other fields' bytes are.
 */
export interface Envelope {
  data: Buffer;
  sessionId: string;
  sessionSpan: Span;
  seq: number;
  timeUs: bigint;
  timeUsNumber: number;
  version: number;
  hash: Span;
  signature: Span | undefined;
  /** The body's field number (11 command, 12 result, …) and its bytes. */
  bodyField: number;
  body: Span;
}

/**
 * The envelope of a valid event (what `readEvent` accepts): each field at most once and with its own
 * wire type, no field it does not know, integers in range, a session id that is valid UTF-8, a body.
 * Anything else gives `undefined` (the caller then takes the generic path).
 */
export function readEnvelope(data: Uint8Array): Envelope | undefined {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new Reader(bytes, 0, bytes.length);
  let version: number | undefined;
  let sessionId: Span | undefined;
  let seq: number | undefined;
  let timeUs: number | undefined;
  let prevHash = false;
  let hash: Span | undefined;
  let signature: Span | undefined;
  let body: Span | undefined;
  let bodyField = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 0:
        if (version !== undefined) return undefined;
        version = r.varint();
        break;
      case (2 << 3) | 2:
        if (sessionId) return undefined;
        sessionId = r.string();
        break;
      case (3 << 3) | 0:
        if (seq !== undefined) return undefined;
        seq = r.varint();
        break;
      case (4 << 3) | 0:
        if (timeUs !== undefined) return undefined;
        timeUs = r.varint();
        break;
      case (5 << 3) | 2:
        if (prevHash) return undefined;
        prevHash = true;
        r.span();
        break;
      case (6 << 3) | 2:
        if (hash) return undefined;
        hash = r.span();
        break;
      case (7 << 3) | 2:
        if (signature) return undefined;
        signature = r.span();
        break;
      default:
        // A body (fields 10 to 18 of the oneof), at most one. Compared whole first: bit operations
        // on a tag beyond 2^31 would wrap it into this range.
        if (tag < ((10 << 3) | 2) || tag > ((18 << 3) | 2) || (tag & 7) !== 2 || body) return undefined;
        bodyField = tag >> 3;
        body = r.span();
    }
    if (r.bad) return undefined;
  }
  // What readEvent requires (FORMAT_VERSION is not 0, so a missing version fails too).
  if (version !== FORMAT_VERSION || !sessionId || sessionId[0] === sessionId[1] || !body) return undefined;
  if (!hash || hash[1] - hash[0] !== 32) return undefined;
  return {
    data: bytes,
    sessionId: bytes.toString("utf8", sessionId[0], sessionId[1]),
    sessionSpan: sessionId,
    seq: seq ?? 0,
    timeUs: BigInt(timeUs ?? 0),
    timeUsNumber: timeUs ?? 0,
    version,
    hash,
    signature,
    bodyField,
    body,
  };
}

/**
 * The body readers take an event only as the generic decoder reads it, and that decoder keeps the
 * last of a singular field that appears twice: a second one sends the event to the generic path.
 * `seen` has bit n set once field n was read; `repeated` has the bits of the message's repeated
 * fields, which may appear any number of times. Returns the new `seen`, or undefined for a singular
 * field read again. Field numbers from 32 on share bits with lower ones, but they are unknown fields,
 * which every reader refuses anyway.
 */
export function markField(seen: number, tag: number, repeated = 0): number | undefined {
  const bit = 1 << (tag >>> 3);
  if (bit & repeated) return seen;
  return seen & bit ? undefined : seen | bit;
}

/** A Value message (the next field of `r`): its `text`, null when it has none, undefined when unreadable. */
export function readValue(r: Reader): Span | null | undefined {
  const value = Reader.of(r.data, r.span());
  let text: Span | null = null;
  while (value.pos < value.end) {
    if (value.varint() !== ((1 << 3) | 2) || text) return undefined;
    text = value.string();
  }
  return value.bad || r.bad ? undefined : text;
}

/** Protobuf wire reading over [pos, end); any error sets `bad` (callers then give up). */
export class Reader {
  bad = false;

  constructor(
    readonly data: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  /** A reader over a length-delimited field's bytes (a sub-message). */
  static of(data: Buffer, [from, to]: Span): Reader {
    return new Reader(data, from, to);
  }

  /** A varint below 2^53 (seq and time_us, which readEvent bounds so, included); larger ones set `bad`. */
  varint(): number {
    const d = this.data;
    let pos = this.pos;
    if (pos < this.end && d[pos]! < 0x80) {
      this.pos = pos + 1;
      return d[pos]!;
    }
    // At most 8 bytes (56 bits); a running factor rather than 2 ** shift, which V8 does not fold.
    let value = 0;
    let factor = 1;
    for (let i = 0; i < 8 && pos < this.end; i++) {
      const b = d[pos++]!;
      value += (b & 0x7f) * factor;
      if (b < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        this.pos = pos;
        return value;
      }
      factor *= 128;
    }
    this.pos = pos;
    this.bad = true;
    return 0;
  }

  /** A uint32 field's value; larger varints set `bad`. */
  uint32(): number {
    const n = this.varint();
    if (n > 0xffffffff) this.bad = true;
    return n;
  }

  /**
   * An int32 or enum field's value, when it is not negative: a negative one takes ten bytes and
   * ts-proto keeps it negative, so it sets `bad` (as larger varints do).
   */
  int32(): number {
    const n = this.varint();
    if (n > 0x7fffffff) this.bad = true;
    return n;
  }

  /** A length-delimited field's bytes. */
  span(): Span {
    const len = this.varint();
    const start = this.pos;
    if (this.bad || len > this.end - start) {
      this.bad = true;
      return [start, start];
    }
    this.pos += len;
    return [start, this.pos];
  }

  /** A string field's bytes; invalid UTF-8 sets `bad` (ts-proto would replace it with U+FFFD). */
  string(): Span {
    const span = this.span();
    for (let i = span[0]; i < span[1]; i++) {
      if (this.data[i]! >= 0x80) {
        if (!isUtf8(this.data.subarray(span[0], span[1]))) this.bad = true;
        break;
      }
    }
    return span;
  }
}
