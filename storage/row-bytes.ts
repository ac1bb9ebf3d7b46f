import type { Envelope, Span } from "./event-bytes.js";

/**
 * Writing an `events` row in ClickHouse's RowBinary format (`eventRow`'s) straight from an event's
 * protobuf bytes. Columns are binary: a String is its length as a LEB128 varint then its bytes, an
 * integer is little-endian, FixedString(32) is its 32 bytes. The body column holds the body as
 * proto3 JSON, written here from the body's fields. Each writer puts its value into `out` at `pos`
 * and returns where it ends; the caller reserved room (`rowBytes`).
 */

/** `session_id, seq, time, version`: the row up to the derived columns. */
export function writeHead(ev: Envelope, out: Buffer, pos: number): number {
  pos = binaryString(ev.data, ev.sessionSpan, out, pos);
  pos = uint64(out, pos, ev.seq);
  pos = uint64(out, pos, ev.timeUsNumber);
  return out.writeUInt32LE(ev.version, pos);
}

/**
 * The body column begins: room for its length, which is known once the body is written
 * (`writeTail`). Returns where the body's JSON starts.
 */
export function beginBody(out: Buffer, pos: number): number {
  return pos + BODY_LENGTH_BYTES;
}

/**
 * `}}` closing the body's JSON (from the end of its fields, see `endObject`), the body's length in
 * front of it, then `hash` and `signature`: the rest of the row. `bodyAt` is what `beginBody` returned.
 */
export function writeTail(ev: Envelope, bodyAt: number, out: Buffer, pos: number): number {
  out[pos++] = 0x7d;
  out[pos++] = 0x7d;
  pos = closeString(out, bodyAt, pos);
  pos = copyBytes(ev.data, ev.hash, out, pos);
  return binaryString(ev.data, ev.signature, out, pos);
}

/** Two bytes hold a varint below 16,384: every body but large results and output. */
const BODY_LENGTH_BYTES = 2;

/**
 * A String whose bytes were written at `start` (after BODY_LENGTH_BYTES of room) up to `end`: its
 * length goes in front, and the bytes move when it takes fewer or more than that room (the
 * caller's room has a few bytes to spare). Returns where the String ends.
 */
function closeString(out: Buffer, start: number, end: number): number {
  const length = end - start;
  const at = start - BODY_LENGTH_BYTES;
  const size = varintSize(length);
  if (size !== BODY_LENGTH_BYTES) out.copyWithin(at + size, start, end);
  varint(out, at, length);
  return at + size + length;
}

/**
 * Room for a row whose body has `bodyBytes` protobuf bytes (a caller that writes some of its strings
 * twice, as a column and in the body, counts them twice).
 */
export function rowBytes(ev: Envelope, bodyBytes: number): number {
  // In the body's JSON a string byte becomes at most six (\u00XX), and so does the one-byte tag and
  // length of an empty string or message ('"",' and '{},' take three); binary columns hold a string
  // as it is, after at most five bytes of length. The rest is names, numbers, the hash and punctuation.
  return (
    ev.sessionSpan[1] - ev.sessionSpan[0] + bodyBytes * 6 + 512 + (ev.signature ? ev.signature[1] - ev.signature[0] : 0)
  );
}

/** A String column: the length, then the bytes of `span` in `d` (none when it is undefined). */
export function binaryString(d: Buffer, span: Span | undefined, out: Buffer, pos: number): number {
  if (!span) {
    out[pos] = 0;
    return pos + 1;
  }
  return copyBytes(d, span, out, varint(out, pos, span[1] - span[0]));
}

/**
 * The bytes of `span` in `d`, as they are. Most are short (ids, names, the hash), and for those a
 * loop costs less than `Buffer.copy`, which goes through a native call (~5% of ingest's thread in a
 * profile).
 */
function copyBytes(d: Buffer, [from, to]: Span, out: Buffer, pos: number): number {
  if (to - from > 64) return pos + d.copy(out, pos, from, to);
  for (let i = from; i < to; i++) out[pos++] = d[i]!;
  return pos;
}

/** An Array(String) column: the count, then each String. */
export function binaryList(d: Buffer, spans: Span[], out: Buffer, pos: number): number {
  pos = varint(out, pos, spans.length);
  for (let i = 0; i < spans.length; i++) pos = binaryString(d, spans[i], out, pos);
  return pos;
}

/** A String column of ASCII text (type and decision names). */
export function binaryAscii(out: Buffer, pos: number, s: string): number {
  return ascii(out, varint(out, pos, s.length), s);
}

/** A UInt64 (or a non-negative Int64) column from an integer below 2^53. */
export function uint64(out: Buffer, pos: number, n: number): number {
  pos = out.writeUInt32LE(n % 0x1_0000_0000, pos);
  return out.writeUInt32LE(Math.floor(n / 0x1_0000_0000), pos);
}

/** A LEB128 varint (RowBinary's lengths), `n` below 2^31. */
export function varint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  out[pos++] = n;
  return pos;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}

/** `"name":` then the string, and a comma: one field of an object (see `endObject`). */
export function stringField(d: Buffer, name: string, span: Span, out: Buffer, pos: number): number {
  pos = writeString(d, span, out, ascii(out, pos, name));
  out[pos++] = 0x2c;
  return pos;
}

/** `"name":` then the number, and a comma. */
export function numberField(name: string, n: number, out: Buffer, pos: number): number {
  pos = digits(out, ascii(out, pos, name), n);
  out[pos++] = 0x2c;
  return pos;
}

/** `"name":["a","b"],` */
export function listField(d: Buffer, name: string, spans: Span[], out: Buffer, pos: number): number {
  pos = writeList(d, spans, out, ascii(out, pos, name));
  out[pos++] = 0x2c;
  return pos;
}

/** Where an object whose fields began at `start` ends: its last field's comma is dropped. */
export function endObject(start: number, pos: number): number {
  return pos > start ? pos - 1 : pos;
}

/** Value messages as Value.toJSON writes them, in a list: `[{"text":…},{}]` ({} for a Value without text). */
export function writeValues(d: Buffer, texts: (Span | null)[], out: Buffer, pos: number): number {
  out[pos++] = 0x5b;
  for (let i = 0; i < texts.length; i++) {
    if (i > 0) out[pos++] = 0x2c;
    const text = texts[i]!;
    if (text === null) pos = ascii(out, pos, "{}");
    else pos = ascii(out, writeString(d, text, out, ascii(out, pos, `{"text":`)), "}");
  }
  out[pos++] = 0x5d;
  return pos;
}

/** A non-negative integer below 2^53 in decimal, as JSON and template strings write it. */
export function digits(out: Buffer, pos: number, n: number): number {
  if (n < 10) {
    out[pos] = 0x30 + n;
    return pos + 1;
  }
  if (n < 1e8) return smallDigits(out, pos, n, 0);
  // Times (16 digits) and other large numbers: two parts that int32 arithmetic can write.
  // Exact: below 2^53, n / 1e8 is under 2^27, where a double's step is finer than the 1e-8 that
  // separates n / 1e8 from the next integer, so it never rounds up to it.
  const high = Math.floor(n / 1e8);
  const low = n - high * 1e8;
  return smallDigits(out, smallDigits(out, pos, high, 0), low, 8);
}

/** n < 1e8 in at least `width` digits (zero-padded). */
function smallDigits(out: Buffer, pos: number, n: number, width: number): number {
  let len = 1;
  for (let x = n; x >= 10; x = (x / 10) | 0) len++;
  if (len < width) len = width;
  for (let i = pos + len - 1; i >= pos; i--) {
    const q = (n / 10) | 0;
    out[i] = 0x30 + n - q * 10;
    n = q;
  }
  return pos + len;
}

/** A string field that is set and not empty (proto3 JSON leaves "" out). */
export function filled(span: Span | undefined): span is Span {
  return span !== undefined && span[1] > span[0];
}

export function writeList(d: Buffer, spans: Span[], out: Buffer, pos: number): number {
  out[pos++] = 0x5b;
  for (let i = 0; i < spans.length; i++) {
    if (i > 0) out[pos++] = 0x2c;
    pos = writeString(d, spans[i], out, pos);
  }
  out[pos++] = 0x5d;
  return pos;
}

/** A JSON string from UTF-8 bytes, escaped as JSON.stringify escapes (valid UTF-8 needs nothing more). */
export function writeString(d: Buffer, span: Span | undefined, out: Buffer, pos: number): number {
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

/** Text known to be ASCII (names, numbers, punctuation). */
export function ascii(out: Buffer, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[pos++] = s.charCodeAt(i);
  return pos;
}
