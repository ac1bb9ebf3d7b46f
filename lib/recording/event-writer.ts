import type { Command, RecordedError, RecordingEvent, Result, Value } from "../../proto/gen/vigil/v1/recording.js";

/*
 * RecordingEvent's protobuf written by hand for the events every statement makes (command and
 * result), into one reused buffer. The generated encoder makes a chunk per string and per nested
 * message and joins them at the end: a pgbench-like command or result took it ~2.1 µs, this writer
 * ~1.3 µs (measured alone). The bytes must be exactly the generated encoder's (the chain hashes them, verification
 * re-encodes with the generated code): event-writer.test.ts compares the two over many events and
 * fails when one of these messages gains a field this file does not write.
 */

// Tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
/** RecordingEvent's own fields (chain.ts appends hash and signature with these tags too). */
export const EVENT = { version: 8, sessionId: 18, seq: 24, timeUs: 32, prevHash: 42, hash: 50, signature: 58 } as const;
const COMMAND_BODY = (11 << 3) | 2;
const RESULT_BODY = (12 << 3) | 2;
const COMMAND = {
  command: 8,
  text: 18,
  source: 26,
  kinds: 34,
  read: 42,
  written: 50,
  params: 58,
  decision: 64,
} as const;
const COMMAND_RULE = 74;
const COMMAND_REASON = 82;
const RESULT = { command: 8, tag: 18, rows: 24, bytes: 32, duration: 40, digest: 50, columns: 58, sample: 66 } as const;
const RESULT_EXIT_STATUS = 72;
const RESULT_EXIT_SIGNAL = 82;
const RESULT_ERROR = 90;
/** Value.text, Row.values, RecordedError.code and .message. */
const FIELD_1 = 10;
const FIELD_2 = 18;

/** Strings up to this length are tried as ASCII, copied a character at a time. */
const ASCII_BY_HAND = 4096;
const MAX_UINT32 = 0xffffffff;
const MAX_INT32 = 0x7fffffff;

/** Thrown inside the writer for a value the hand path does not cover; the caller falls back. */
const UNCOVERED = Symbol("uncovered");

class Writer {
  buf = Buffer.allocUnsafe(16 * 1024);
  pos = 0;

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A varint of a non-negative integer below 2^53 (the caller checks). */
  varint(n: number): void {
    this.ensure(8);
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 0x80) {
      buf[pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  uint32(tag: number, n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > MAX_UINT32) throw UNCOVERED;
    this.varint(tag);
    this.varint(n);
  }

  /** int32 and enum fields; a negative value (ten bytes on the wire) is left to the generated encoder. */
  int32(tag: number, n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > MAX_INT32) throw UNCOVERED;
    this.varint(tag);
    this.varint(n);
  }

  /** uint64 and (non-negative) int64 fields. */
  uint64(tag: number, n: bigint): void {
    // Past 2^53 the conversion rounds to 2^53 or more, which is refused as well.
    const x = Number(n);
    if (!(x >= 0 && x <= Number.MAX_SAFE_INTEGER)) throw UNCOVERED;
    this.varint(tag);
    this.varint(x);
  }

  string(tag: number, s: string): void {
    if (typeof s !== "string") throw UNCOVERED;
    this.varint(tag);
    const length = s.length;
    if (length <= ASCII_BY_HAND) {
      // Most of these strings are ASCII (statements, kinds, tags, names, digests), whose length in
      // bytes is known up front: copied by hand, not by two native calls each. The first other
      // character hands the string to Buffer's UTF-8 writer.
      const start = this.pos;
      this.varint(length);
      this.ensure(length);
      const buf = this.buf;
      const at = this.pos;
      let i = 0;
      for (; i < length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[at + i] = c;
      }
      if (i === length) {
        this.pos = at + length;
        return;
      }
      this.pos = start;
    }
    const n = Buffer.byteLength(s, "utf8");
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n);
  }

  bytes(tag: number, b: Uint8Array): void {
    this.varint(tag);
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Start a nested message: its tag, and one byte kept for its length (see end). */
  begin(tag: number): number {
    this.varint(tag);
    this.ensure(1);
    return ++this.pos;
  }

  /** Write the length of the message begun at `start`, moving it along when the length needs more than a byte. */
  end(start: number): void {
    const length = this.pos - start;
    if (length < 0x80) {
      this.buf[start - 1] = length;
      return;
    }
    let extra = 0;
    for (let n = length; n >= 0x80; n = Math.floor(n / 0x80)) extra++;
    this.ensure(extra);
    this.buf.copyWithin(start + extra, start, this.pos);
    this.pos = start - 1;
    this.varint(length);
    this.pos += length;
  }
}

const writer = new Writer();

/**
 * `prefix` followed by the protobuf of `event` (as RecordingEvent.encode writes it), as a new buffer;
 * undefined when the body is not a command or a result, or holds a value the hand path leaves to
 * the generated encoder (a negative or huge number).
 */
export function encodeEventAfter(prefix: Uint8Array, event: RecordingEvent): Uint8Array | undefined {
  const body = event.body;
  if (body?.$case !== "command" && body?.$case !== "result") return undefined;
  const w = writer;
  w.pos = 0;
  try {
    w.ensure(prefix.length);
    w.buf.set(prefix, 0);
    w.pos = prefix.length;
    if (event.version !== 0) w.uint32(EVENT.version, event.version);
    if (event.sessionId !== "") w.string(EVENT.sessionId, event.sessionId);
    if (event.seq !== 0n) w.uint64(EVENT.seq, event.seq);
    if (event.timeUs !== 0n) w.uint64(EVENT.timeUs, event.timeUs);
    if (event.prevHash.length !== 0) w.bytes(EVENT.prevHash, event.prevHash);
    if (event.hash.length !== 0) w.bytes(EVENT.hash, event.hash);
    if (event.signature.length !== 0) w.bytes(EVENT.signature, event.signature);
    if (body.$case === "command") {
      const at = w.begin(COMMAND_BODY);
      writeCommand(w, body.value);
      w.end(at);
    } else {
      const at = w.begin(RESULT_BODY);
      writeResult(w, body.value);
      w.end(at);
    }
  } catch (err) {
    if (err === UNCOVERED) return undefined;
    throw err;
  }
  // A copy (from Node's pool): the writer's buffer is reused.
  const out = Buffer.allocUnsafe(w.pos);
  w.buf.copy(out, 0, 0, w.pos);
  return out;
}

function writeCommand(w: Writer, c: Command): void {
  if (c.command !== 0) w.uint32(COMMAND.command, c.command);
  if (c.text !== "") w.string(COMMAND.text, c.text);
  if (c.source !== "") w.string(COMMAND.source, c.source);
  // Indexed loops: a for-of here allocated an iterator result per element (the lists come frozen
  // from the SQL analysis' cache or fresh, and the iteration was not optimized away).
  strings(w, COMMAND.kinds, c.kinds);
  strings(w, COMMAND.read, c.tablesRead);
  strings(w, COMMAND.written, c.tablesWritten);
  for (let i = 0; i < c.params.length; i++) writeValue(w, COMMAND.params, c.params[i]!);
  if (c.decision !== 0) w.int32(COMMAND.decision, c.decision);
  if (c.rule !== "") w.string(COMMAND_RULE, c.rule);
  if (c.reason !== "") w.string(COMMAND_REASON, c.reason);
}

function writeResult(w: Writer, r: Result): void {
  if (r.command !== 0) w.uint32(RESULT.command, r.command);
  if (r.tag !== "") w.string(RESULT.tag, r.tag);
  if (r.rows !== 0n) w.uint64(RESULT.rows, r.rows);
  if (r.bytes !== 0n) w.uint64(RESULT.bytes, r.bytes);
  if (r.durationUs !== 0n) w.uint64(RESULT.duration, r.durationUs);
  if (r.digest !== "") w.string(RESULT.digest, r.digest);
  strings(w, RESULT.columns, r.columns);
  for (let i = 0; i < r.sample.length; i++) {
    const values = r.sample[i]!.values;
    const at = w.begin(RESULT.sample);
    for (let j = 0; j < values.length; j++) writeValue(w, FIELD_1, values[j]!);
    w.end(at);
  }
  if (r.exitStatus !== undefined) w.int32(RESULT_EXIT_STATUS, r.exitStatus);
  if (r.exitSignal !== undefined) w.string(RESULT_EXIT_SIGNAL, r.exitSignal);
  if (r.error !== undefined) writeError(w, RESULT_ERROR, r.error);
}

function strings(w: Writer, tag: number, list: readonly string[]): void {
  for (let i = 0; i < list.length; i++) w.string(tag, list[i]!);
}

function writeValue(w: Writer, tag: number, v: Value): void {
  const at = w.begin(tag);
  if (v.text !== undefined) w.string(FIELD_1, v.text);
  w.end(at);
}

function writeError(w: Writer, tag: number, e: RecordedError): void {
  const at = w.begin(tag);
  if (e.code !== "") w.string(FIELD_1, e.code);
  if (e.message !== "") w.string(FIELD_2, e.message);
  w.end(at);
}
