/**
 * Writes one message into a buffer sized up front, so a serializer allocates once and never
 * grows a buffer. Callers compute the body length first (see `cstringLength`).
 */
export class MessageWriter {
  readonly buffer: Buffer;
  #pos: number;

  /** `code` undefined for the untyped startup-phase packets (length word first). */
  constructor(code: number | undefined, bodyLength: number) {
    const header = code === undefined ? 4 : 5;
    this.buffer = Buffer.allocUnsafe(header + bodyLength);
    if (code !== undefined) this.buffer[0] = code;
    this.buffer.writeInt32BE(4 + bodyLength, header - 4);
    this.#pos = header;
  }

  byte(value: number): this {
    this.buffer[this.#pos++] = value;
    return this;
  }

  int16(value: number): this {
    this.#pos = this.buffer.writeInt16BE(value, this.#pos);
    return this;
  }

  /** Counts are unsigned 16-bit on the wire. */
  uint16(value: number): this {
    this.#pos = this.buffer.writeUInt16BE(value, this.#pos);
    return this;
  }

  int32(value: number): this {
    this.#pos = this.buffer.writeInt32BE(value, this.#pos);
    return this;
  }

  uint32(value: number): this {
    this.#pos = this.buffer.writeUInt32BE(value, this.#pos);
    return this;
  }

  bytes(value: Buffer): this {
    this.#pos += value.copy(this.buffer, this.#pos);
    return this;
  }

  /** `value` must have passed `cstringLength`, which rejects embedded NULs. */
  cstring(value: string): this {
    this.#pos += this.buffer.write(value, this.#pos, "utf8");
    this.buffer[this.#pos++] = 0;
    return this;
  }

  /** The finished message; throws if the declared length and the bytes written disagree. */
  done(): Buffer {
    if (this.#pos !== this.buffer.length) {
      throw new Error(`message writer: wrote ${this.#pos} of ${this.buffer.length} bytes`);
    }
    return this.buffer;
  }
}

/**
 * Wire size of `value` as a NUL-terminated string. An embedded NUL would end the string early and
 * let the rest be read as the next fields, so it is refused here (a caller bug, hence TypeError).
 */
export function cstringLength(value: string, field: string): number {
  if (value.includes("\0")) throw new TypeError(`${field} contains a NUL byte`);
  return Buffer.byteLength(value, "utf8") + 1;
}
