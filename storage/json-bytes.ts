import type { Envelope, Span } from "./event-bytes.js";

/**
 * Writing an insert line (`eventLine`'s JSONCompactEachRow) straight from an event's protobuf bytes.
 * Each writer puts its value into `out` at `pos` and returns where it ends; the caller reserved room.
 */

/** `[session_id,seq,time_us,version,`: the line up to the derived columns. */
export function writeHead(ev: Envelope, out: Buffer, pos: number): number {
  out[pos++] = 0x5b; // [
  pos = writeString(ev.data, ev.sessionSpan, out, pos);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.seq);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.timeUsNumber);
  out[pos++] = 0x2c;
  pos = digits(out, pos, ev.version);
  out[pos++] = 0x2c;
  return pos;
}

/** `}},"hash","signature"]\n`: the line from the end of the body's fields (see `endObject`). */
export function writeTail(ev: Envelope, out: Buffer, pos: number): number {
  pos = ascii(out, pos, `}},"`);
  pos = hex(ev.data, ev.hash, out, pos);
  pos = ascii(out, pos, `","`);
  if (ev.signature) pos = hex(ev.data, ev.signature, out, pos);
  return ascii(out, pos, `"]\n`);
}

/** Room for the head and tail, with `bodyBytes` protobuf bytes of strings written `times` times. */
export function lineBytes(ev: Envelope, bodyBytes: number): number {
  // A string byte becomes at most six (\u00XX), and so does the one-byte tag and length of an empty
  // string or message ('"",' and '{},' take three). The rest is names, numbers, the hash and punctuation.
  return (
    (ev.sessionSpan[1] - ev.sessionSpan[0] + bodyBytes) * 6 +
    512 +
    (ev.signature ? 2 * (ev.signature[1] - ev.signature[0]) : 0)
  );
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

function hex(d: Buffer, [from, to]: Span, out: Buffer, pos: number): number {
  for (let i = from; i < to; i++) {
    const b = d[i]!;
    out[pos++] = HEX[b >> 4]!;
    out[pos++] = HEX[b & 15]!;
  }
  return pos;
}

/** Text known to be ASCII (names, numbers, punctuation). */
export function ascii(out: Buffer, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[pos++] = s.charCodeAt(i);
  return pos;
}
