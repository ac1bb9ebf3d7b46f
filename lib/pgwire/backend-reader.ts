import type { RowField } from "./backend.js";
import { BodyReader } from "./body-reader.js";
import { PROTOCOL_VIOLATION, PgProtocolError } from "./errors.js";
import { FrameBuffer } from "./frame-buffer.js";

/**
 * Splits a server's byte stream into messages, without decoding them: on the data path most
 * messages are forwarded as `raw`, and only the few a caller inspects go through a decoder.
 * There is no size cap (a server's DataRow may be as large as it likes); lengths below 4 fail.
 *
 * The single-byte answer to SSLRequest is not a message: read it before pushing to this. The first
 * PgProtocolError leaves the reader failed, and every later `next()` throws it again.
 */
export class BackendReader {
  readonly #frames = new FrameBuffer();
  #failure: PgProtocolError | undefined;

  push(chunk: Buffer): void {
    this.#frames.push(chunk);
  }

  /** Bytes received and not yet returned by `next()`. */
  get buffered(): number {
    return this.#frames.buffered;
  }

  /** The chunk the next message starts in (see dataRowRun); undefined when nothing is buffered. */
  get headChunk(): Buffer | undefined {
    if (this.#failure) throw this.#failure;
    return this.#frames.headChunk;
  }

  /** Where in headChunk the next message starts. */
  get headOffset(): number {
    return this.#frames.headOffset;
  }

  /** Consume `n` bytes of the head chunk that the caller has handled in place (see dataRowRun). */
  skip(n: number): void {
    this.#frames.skip(n);
  }

  /** `raw` is the whole message as received, `body` the part after the length word; both views where possible. */
  next(): { code: number; raw: Buffer; body: Buffer } | undefined {
    if (this.#failure) throw this.#failure;
    const frames = this.#frames;
    if (frames.buffered < 5) return undefined;
    const length = frames.int32At(1);
    if (length < 4) {
      this.#failure = new PgProtocolError(
        PROTOCOL_VIOLATION,
        `backend message type ${frames.byteAt(0)} has invalid length ${length}`,
      );
      throw this.#failure;
    }
    if (frames.buffered < 1 + length) return undefined;
    const raw = frames.take(1 + length);
    return { code: raw[0]!, raw, body: raw.subarray(5) };
  }
}

/** Whole DataRow messages lying back to back in one received chunk: `[start, end)` of `chunk`. */
export interface DataRowRun {
  chunk: Buffer;
  start: number;
  end: number;
  count: number;
}

/**
 * The DataRows at the head of `reader` that lie wholly in its current chunk, without consuming them
 * (`reader.skip(end - start)` does): a large result is handled a run at a time, with no view or
 * object per row. Undefined when the next message is not a whole DataRow in that chunk (then
 * `next()` frames it, or reports its bad length).
 */
export function dataRowRun(reader: BackendReader): DataRowRun | undefined {
  const chunk = reader.headChunk;
  if (!chunk) return undefined;
  const offset = reader.headOffset;
  const size = chunk.length;
  let at = offset;
  let count = 0;
  while (at + 5 <= size && chunk[at] === 0x44) {
    const length = ((chunk[at + 1]! << 24) | (chunk[at + 2]! << 16) | (chunk[at + 3]! << 8) | chunk[at + 4]!) >>> 0;
    // A length below 4 (or above 2^31) is left to next(), which fails the stream on it.
    if (length < 4 || length > 0x7fffffff || at + 1 + length > size) break;
    at += 1 + length;
    count++;
  }
  return count === 0 ? undefined : { chunk, start: offset, end: at, count };
}

export function decodeRowDescription(body: Buffer): RowField[] {
  const r = new BodyReader(body, "RowDescription");
  const count = r.uint16("field count");
  const fields: RowField[] = [];
  for (let i = 0; i < count; i++) {
    const name = r.cstring("field name");
    const tableOid = r.uint32("table OID");
    const column = r.int16("column number");
    const typeOid = r.uint32("type OID");
    const typeSize = r.int16("type size");
    const typeMod = r.int32("type modifier");
    const format = r.int16("format code");
    if (format !== 0 && format !== 1) throw r.error(`field ${i + 1} has format code ${format}, expected 0 or 1`);
    fields.push({ name, tableOid, column, typeOid, typeSize, typeMod, format });
  }
  r.end();
  return fields;
}

/** Values are views into `body` (null is SQL NULL). Hand-rolled: this runs once per row. */
export function decodeDataRow(body: Buffer): (Buffer | null)[] {
  if (body.length < 2) throw dataRowError(`column count needs 2 bytes, body has ${body.length}`);
  const count = body.readUInt16BE(0);
  const values: (Buffer | null)[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (body.length - pos < 4) throw dataRowError(`column ${i + 1} length needs 4 bytes at offset ${pos}`);
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length === -1) {
      values.push(null);
    } else if (length < 0 || length > body.length - pos) {
      throw dataRowError(`column ${i + 1} has length ${length}, ${body.length - pos} bytes left`);
    } else {
      values.push(body.subarray(pos, (pos += length)));
    }
  }
  if (pos !== body.length) throw dataRowError(`${body.length - pos} unexpected bytes after the last column`);
  return values;
}

function dataRowError(detail: string): PgProtocolError {
  return new PgProtocolError(PROTOCOL_VIOLATION, `DataRow: ${detail}`);
}

export function decodeCommandComplete(body: Buffer): string {
  const r = new BodyReader(body, "CommandComplete");
  const tag = r.cstring("command tag");
  r.end();
  return tag;
}

export function decodeReadyForQuery(body: Buffer): "I" | "T" | "E" {
  const r = new BodyReader(body, "ReadyForQuery");
  const status = String.fromCharCode(r.byte("transaction status"));
  r.end();
  if (status !== "I" && status !== "T" && status !== "E") {
    throw r.error(`unknown transaction status ${JSON.stringify(status)}`);
  }
  return status;
}

/** ErrorResponse and NoticeResponse: field type letter to value; a repeated type keeps the last. */
export function decodeErrorFields(body: Buffer): Record<string, string> {
  const r = new BodyReader(body, "ErrorResponse/NoticeResponse");
  const fields: Record<string, string> = {};
  for (;;) {
    if (r.remaining === 0) throw r.error("missing the terminating NUL");
    const type = r.byte("field type");
    if (type === 0) break;
    fields[String.fromCharCode(type)] = r.cstring("field value");
  }
  r.end();
  return fields;
}

/** The key is copied: it outlives the message, and a view would pin the whole received chunk. */
export function decodeBackendKeyData(body: Buffer): { pid: number; secret: Buffer } {
  const r = new BodyReader(body, "BackendKeyData");
  const pid = r.int32("process ID");
  const secret = r.rest();
  if (secret.length < 4 || secret.length > 256) {
    throw r.error(`cancel key of ${secret.length} bytes, expected 4 to 256`);
  }
  return { pid, secret: Buffer.from(secret) };
}

export function decodeParameterStatus(body: Buffer): { name: string; value: string } {
  const r = new BodyReader(body, "ParameterStatus");
  const name = r.cstring("parameter name");
  const value = r.cstring("parameter value");
  r.end();
  return { name, value };
}

export function decodeNotificationResponse(body: Buffer): { pid: number; channel: string; payload: string } {
  const r = new BodyReader(body, "NotificationResponse");
  const pid = r.int32("process ID");
  const channel = r.cstring("channel");
  const payload = r.cstring("payload");
  r.end();
  return { pid, channel, payload };
}
