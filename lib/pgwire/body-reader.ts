import { constants } from "node:buffer";
import { PROGRAM_LIMIT_EXCEEDED, PROTOCOL_VIOLATION, PgProtocolError } from "./errors.js";

/**
 * A cursor over one message body. Every read is bounds-checked against the body, never against a
 * count or length the peer sent, and fails with a PgProtocolError that names the message and
 * field, so a malformed frame is reported precisely instead of surfacing as a RangeError.
 */
export class BodyReader {
  #pos = 0;

  constructor(
    readonly body: Buffer,
    /** Message name for error text, e.g. "Bind". */
    readonly message: string,
  ) {}

  get remaining(): number {
    return this.body.length - this.#pos;
  }

  byte(field: string): number {
    this.#need(1, field);
    return this.body[this.#pos++]!;
  }

  int16(field: string): number {
    this.#need(2, field);
    const value = this.body.readInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  /** Counts are unsigned on the wire (PostgreSQL reads them with pq_getmsgint). */
  uint16(field: string): number {
    this.#need(2, field);
    const value = this.body.readUInt16BE(this.#pos);
    this.#pos += 2;
    return value;
  }

  int32(field: string): number {
    this.#need(4, field);
    const value = this.body.readInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  /** OIDs are unsigned 32-bit. */
  uint32(field: string): number {
    this.#need(4, field);
    const value = this.body.readUInt32BE(this.#pos);
    this.#pos += 4;
    return value;
  }

  /** A view of the next `n` bytes. */
  bytes(n: number, field: string): Buffer {
    this.#need(n, field);
    return this.body.subarray(this.#pos, (this.#pos += n));
  }

  /** A view of everything not yet read. */
  rest(): Buffer {
    const out = this.body.subarray(this.#pos);
    this.#pos = this.body.length;
    return out;
  }

  cstring(field: string): string {
    const end = this.body.indexOf(0, this.#pos);
    if (end < 0) throw this.error(`${field} is not NUL-terminated`);
    if (end - this.#pos > constants.MAX_STRING_LENGTH) {
      throw new PgProtocolError(
        PROGRAM_LIMIT_EXCEEDED,
        `${this.message}: ${field} of ${end - this.#pos} bytes is longer than a string can be here`,
      );
    }
    const value = this.body.toString("utf8", this.#pos, end);
    this.#pos = end + 1;
    return value;
  }

  /** PostgreSQL's pq_getmsgend: a message with bytes left over is malformed, not padded. */
  end(): void {
    if (this.#pos !== this.body.length) {
      throw this.error(`${this.body.length - this.#pos} unexpected bytes after the last field`);
    }
  }

  error(detail: string): PgProtocolError {
    return new PgProtocolError(PROTOCOL_VIOLATION, `${this.message}: ${detail}`);
  }

  #need(n: number, field: string): void {
    if (n < 0 || this.#pos + n > this.body.length) {
      throw this.error(`${field} needs ${n} bytes at offset ${this.#pos}, ${this.remaining} left`);
    }
  }
}
