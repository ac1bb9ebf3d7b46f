/**
 * Bytes received but not yet framed, for streams of `type byte + int32 length + body` messages.
 *
 * Chunks are kept as they arrived and joined only when a complete message spans several of them:
 * a message inside one chunk comes back as a view, and a message of hundreds of MiB arriving in
 * 64 KiB chunks is copied once, not once per chunk. Nothing is ever allocated from a length field,
 * only from bytes already received, so a corrupt length costs memory only if the peer sends it.
 */
export class FrameBuffer {
  readonly #chunks: Buffer[] = [];
  /** Bytes of `#chunks[0]` already taken. */
  #offset = 0;
  #buffered = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  get buffered(): number {
    return this.#buffered;
  }

  /** The byte `index` bytes ahead; the caller ensures `index < buffered`. */
  byteAt(index: number): number {
    let at = this.#offset + index;
    for (const chunk of this.#chunks) {
      if (at < chunk.length) return chunk[at]!;
      at -= chunk.length;
    }
    throw new RangeError(`byteAt(${index}) with ${this.#buffered} bytes buffered`);
  }

  /** The big-endian int32 `index` bytes ahead; the caller ensures `index + 4 <= buffered`. */
  int32At(index: number): number {
    const first = this.#chunks[0];
    const at = this.#offset + index;
    if (first && at + 4 <= first.length) return first.readInt32BE(at);
    return (
      ((this.byteAt(index) << 24) |
        (this.byteAt(index + 1) << 16) |
        (this.byteAt(index + 2) << 8) |
        this.byteAt(index + 3)) >>
      0
    );
  }

  /** The chunk the next byte is in (see headOffset): for callers that walk many small messages in place. */
  get headChunk(): Buffer | undefined {
    return this.#chunks[0];
  }

  /** Where in headChunk the next byte is. */
  get headOffset(): number {
    return this.#offset;
  }

  /** Drop the next `n` bytes of the head chunk (no view made); `n` must not reach past that chunk. */
  skip(n: number): void {
    const first = this.#chunks[0];
    if (!first || this.#offset + n > first.length) throw new RangeError(`skip(${n}) past the head chunk`);
    this.#buffered -= n;
    this.#offset += n;
    if (this.#offset === first.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** Remove the next `n` bytes as one buffer: a view when they sit in one chunk, else one copy. */
  take(n: number): Buffer {
    if (n > this.#buffered) throw new RangeError(`take(${n}) with ${this.#buffered} bytes buffered`);
    this.#buffered -= n;
    const first = this.#chunks[0]!;
    const start = this.#offset;
    if (first.length - start >= n) {
      this.#offset += n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      return first.subarray(start, start + n);
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let used = 0;
    while (written < n) {
      const chunk = this.#chunks[used]!;
      const count = Math.min(chunk.length - this.#offset, n - written);
      chunk.copy(out, written, this.#offset, this.#offset + count);
      written += count;
      this.#offset += count;
      if (this.#offset === chunk.length) {
        used++;
        this.#offset = 0;
      }
    }
    // One splice per message: shifting per chunk would make a 300 MiB message quadratic in chunks.
    this.#chunks.splice(0, used);
    return out;
  }
}
