import { isUtf8 } from "node:buffer";
import { FORMAT_VERSION } from "../lib/recording/chain.js";
import { decisionName } from "../lib/recording/view.js";
import { decisionToJSON, type Decision } from "../proto/gen/vigil/v1/recording.js";

/** A field's bytes in the message: [start, end). */
type Span = [number, number];

/**
 * A command event as ingest reads it from its protobuf bytes: the values its batch keeps (session,
 * seq, time, the summary's command number and decision) and where each field's bytes are, from
 * which `writeCommandLine` writes the insert line.
 */
export interface CommandEvent {
  data: Buffer;
  sessionId: string;
  sessionSpan: Span;
  seq: number;
  timeUs: bigint;
  timeUsNumber: number;
  version: number;
  hash: Span;
  signature: Span | undefined;
  command: number;
  decision: Decision;
  text: Span | undefined;
  source: Span | undefined;
  kinds: Span[];
  tablesRead: Span[];
  tablesWritten: Span[];
  /** Each Value's `text`, or null when the Value has none. */
  params: (Span | null)[];
  rule: Span | undefined;
  reason: Span | undefined;
  /** The session id's bytes plus twice the command's: see `commandLineBytes`. */
  stringBytes: number;
}

/**
 * A command event read straight from its protobuf bytes, for `writeCommandLine`: no RecordingEvent,
 * no proto3 JSON object, no strings but the session id. Commands are most of what relays record;
 * decoding each with ts-proto and serializing it again took more of the ingest worker's JS thread
 * than everything else it does per event.
 *
 * It takes only what it reads exactly as the generic path (`RecordingEvent.decode`, `eventLine`)
 * would: a valid event (what `readEvent` accepts) with a command body, each field at most once
 * (repeated ones aside) and with its own wire type, no field it does not know, integers in range,
 * strings that are valid UTF-8. Anything else gives `undefined`, and the caller takes the generic
 * path, which stores it (or says why not) as before. storage/command-line.test.ts compares both
 * paths byte for byte.
 */
export function readCommandEvent(data: Uint8Array): CommandEvent | undefined {
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
  while (r.pos < r.end) {
    switch (r.varint()) {
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
      case (11 << 3) | 2:
        if (body) return undefined;
        body = r.span();
        break;
      default:
        return undefined;
    }
    if (r.bad) return undefined;
  }
  // What readEvent requires (FORMAT_VERSION is not 0, so a missing version fails too).
  if (version !== FORMAT_VERSION || !sessionId || sessionId[0] === sessionId[1] || !body) return undefined;
  if (!hash || hash[1] - hash[0] !== 32) return undefined;
  const ev: CommandEvent = {
    data: bytes,
    sessionId: bytes.toString("utf8", sessionId[0], sessionId[1]),
    sessionSpan: sessionId,
    seq: seq ?? 0,
    timeUs: BigInt(timeUs ?? 0),
    timeUsNumber: timeUs ?? 0,
    version,
    hash,
    signature,
    command: 0,
    decision: 0,
    text: undefined,
    source: undefined,
    kinds: [],
    tablesRead: [],
    tablesWritten: [],
    params: [],
    rule: undefined,
    reason: undefined,
    stringBytes: sessionId[1] - sessionId[0],
  };
  return readCommand(new Reader(bytes, body[0], body[1]), ev) ? ev : undefined;
}

/** The Command message's fields into `ev`; false when it is not one this reader takes. */
function readCommand(r: Reader, ev: CommandEvent): boolean {
  let command: number | undefined;
  let decision: number | undefined;
  const start = r.pos;
  while (r.pos < r.end) {
    switch (r.varint()) {
      case (1 << 3) | 0:
        if (command !== undefined) return false;
        command = r.varint();
        if (command > 0xffffffff) return false;
        break;
      case (2 << 3) | 2:
        if (ev.text) return false;
        ev.text = r.string();
        break;
      case (3 << 3) | 2:
        if (ev.source) return false;
        ev.source = r.string();
        break;
      case (4 << 3) | 2:
        ev.kinds.push(r.string());
        break;
      case (5 << 3) | 2:
        ev.tablesRead.push(r.string());
        break;
      case (6 << 3) | 2:
        ev.tablesWritten.push(r.string());
        break;
      case (7 << 3) | 2: {
        const [from, to] = r.span();
        const value = new Reader(r.data, from, to);
        let text: Span | null = null;
        while (value.pos < value.end) {
          if (value.varint() !== ((1 << 3) | 2) || text) return false;
          text = value.string();
        }
        if (value.bad) return false;
        ev.params.push(text);
        break;
      }
      case (8 << 3) | 0:
        if (decision !== undefined) return false;
        decision = r.varint();
        // int32 on the wire: a negative one takes ten bytes, and ts-proto keeps it negative.
        if (decision > 0x7fffffff) return false;
        break;
      case (9 << 3) | 2:
        if (ev.rule) return false;
        ev.rule = r.string();
        break;
      case (10 << 3) | 2:
        if (ev.reason) return false;
        ev.reason = r.string();
        break;
      default:
        return false;
    }
    if (r.bad) return false;
  }
  ev.command = command ?? 0;
  ev.decision = decision ?? 0;
  // The line holds the rule and the kinds twice (as columns and in the body), every other string once.
  ev.stringBytes += 2 * (r.end - start);
  return true;
}

/** The most bytes `writeCommandLine` writes for `ev`. */
export function commandLineBytes(ev: CommandEvent): number {
  // A string byte becomes at most six (\u00XX), and so does the one-byte tag and length of an empty
  // string or Value ('"",' and '{},' take three). The rest is names, numbers, the hash and punctuation.
  return ev.stringBytes * 6 + 512 + (ev.signature ? 2 * (ev.signature[1] - ev.signature[0]) : 0);
}

/**
 * Write `eventLine(RecordingEvent.decode(ev.data))` into `out` at `pos` (room: `commandLineBytes`);
 * returns where it ends. Strings are copied as their UTF-8 bytes, escaped as JSON.stringify
 * escapes them; the body's fields follow Command.toJSON (its order, defaults left out).
 */
export function writeCommandLine(ev: CommandEvent, out: Buffer, pos: number): number {
  const d = ev.data;
  out[pos++] = 0x5b; // [
  pos = writeString(d, ev.sessionSpan, out, pos);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.seq);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.timeUsNumber);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.version);
  pos = ascii(out, pos, `,"command",`);
  pos = digits(out, pos, ev.command);
  pos = ascii(out, pos, DECISION_COLUMN[ev.decision] ?? `,"${decisionName(ev.decision)}",`);
  pos = writeString(d, ev.rule, out, pos);
  out[pos++] = 0x2c; // ,
  pos = writeList(d, ev.kinds, out, pos);
  pos = ascii(out, pos, `,{"command":{`);
  const bodyStart = pos;
  if (ev.command) pos = ascii(out, digits(out, ascii(out, pos, `"command":`), ev.command), ",");
  if (filled(ev.text)) pos = ascii(out, writeString(d, ev.text, out, ascii(out, pos, `"text":`)), ",");
  if (filled(ev.source)) pos = ascii(out, writeString(d, ev.source, out, ascii(out, pos, `"source":`)), ",");
  if (ev.kinds.length) pos = ascii(out, writeList(d, ev.kinds, out, ascii(out, pos, `"kinds":`)), ",");
  if (ev.tablesRead.length) pos = ascii(out, writeList(d, ev.tablesRead, out, ascii(out, pos, `"tablesRead":`)), ",");
  if (ev.tablesWritten.length) {
    pos = ascii(out, writeList(d, ev.tablesWritten, out, ascii(out, pos, `"tablesWritten":`)), ",");
  }
  if (ev.params.length) {
    pos = ascii(out, pos, `"params":[`);
    for (let i = 0; i < ev.params.length; i++) {
      const text = ev.params[i]!;
      if (i > 0) out[pos++] = 0x2c;
      if (text === null) pos = ascii(out, pos, "{}");
      else pos = ascii(out, writeString(d, text, out, ascii(out, pos, `{"text":`)), "}");
    }
    pos = ascii(out, pos, "],");
  }
  if (ev.decision) pos = ascii(out, pos, DECISION_FIELD[ev.decision] ?? `"decision":"${decisionToJSON(ev.decision)}",`);
  if (filled(ev.rule)) pos = ascii(out, writeString(d, ev.rule, out, ascii(out, pos, `"rule":`)), ",");
  if (filled(ev.reason)) pos = ascii(out, writeString(d, ev.reason, out, ascii(out, pos, `"reason":`)), ",");
  if (pos > bodyStart) pos--; // the last field's comma
  pos = ascii(out, pos, `}},"`);
  pos = hex(d, ev.hash, out, pos);
  pos = ascii(out, pos, `","`);
  if (ev.signature) pos = hex(d, ev.signature, out, pos);
  return ascii(out, pos, `"]\n`);
}

/** The decision column and the body's decision field of the usual decisions, built once. */
const DECISION_COLUMN: Record<number, string> = {};
const DECISION_FIELD: Record<number, string> = {};
for (const d of [0, 1, 2, 3] as Decision[]) {
  DECISION_COLUMN[d] = `,"${decisionName(d)}",`;
  DECISION_FIELD[d] = `"decision":"${decisionToJSON(d)}",`;
}

/** A non-negative integer below 2^53 in decimal, as JSON and template strings write it. */
function digits(out: Buffer, pos: number, n: number): number {
  if (n < 10) {
    out[pos] = 0x30 + n;
    return pos + 1;
  }
  let len = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
  for (let i = pos + len - 1; i >= pos; i--) {
    out[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return pos + len;
}

/** A string field that is set and not empty (proto3 JSON leaves "" out). */
function filled(span: Span | undefined): span is Span {
  return span !== undefined && span[1] > span[0];
}

function writeList(d: Buffer, spans: Span[], out: Buffer, pos: number): number {
  out[pos++] = 0x5b;
  for (let i = 0; i < spans.length; i++) {
    if (i > 0) out[pos++] = 0x2c;
    pos = writeString(d, spans[i], out, pos);
  }
  out[pos++] = 0x5d;
  return pos;
}

/** A JSON string from UTF-8 bytes, escaped as JSON.stringify escapes (valid UTF-8 needs nothing more). */
function writeString(d: Buffer, span: Span | undefined, out: Buffer, pos: number): number {
  out[pos++] = 0x22;
  if (span) {
    for (let i = span[0]; i < span[1]; i++) {
      const b = d[i]!;
      if (b >= 0x20 && b !== 0x22 && b !== 0x5c) {
        out[pos++] = b;
        continue;
      }
      out[pos++] = 0x5c;
      const short = SHORT_ESCAPES[b];
      if (short !== undefined) {
        out[pos++] = short;
      } else {
        out[pos++] = 0x75; // u00XX, lower-case hex
        out[pos++] = 0x30;
        out[pos++] = 0x30;
        out[pos++] = HEX[b >> 4]!;
        out[pos++] = HEX[b & 15]!;
      }
    }
  }
  out[pos++] = 0x22;
  return pos;
}

const SHORT_ESCAPES: Record<number, number> = {
  0x22: 0x22, // \"
  0x5c: 0x5c, // \\
  0x08: 0x62, // \b
  0x09: 0x74, // \t
  0x0a: 0x6e, // \n
  0x0c: 0x66, // \f
  0x0d: 0x72, // \r
};

const HEX = Buffer.from("0123456789abcdef");

function hex(d: Buffer, [from, to]: Span, out: Buffer, pos: number): number {
  for (let i = from; i < to; i++) {
    const b = d[i]!;
    out[pos++] = HEX[b >> 4]!;
    out[pos++] = HEX[b & 15]!;
  }
  return pos;
}

/** Text known to be ASCII (names, numbers, punctuation). */
function ascii(out: Buffer, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[pos++] = s.charCodeAt(i);
  return pos;
}

/** Protobuf wire reading over [pos, end); any error sets `bad` (callers then give up). */
class Reader {
  bad = false;

  constructor(
    readonly data: Buffer,
    public pos: number,
    readonly end: number,
  ) {}

  /** A varint below 2^53 (seq and time_us, which readEvent bounds so, included); larger ones set `bad`. */
  varint(): number {
    if (this.pos < this.end && this.data[this.pos]! < 0x80) return this.data[this.pos++]!;
    let value = 0;
    for (let shift = 0; shift < 53; shift += 7) {
      if (this.pos >= this.end) break;
      const b = this.data[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
    }
    this.bad = true;
    return 0;
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
