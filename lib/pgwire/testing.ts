// Test helpers for the pgwire codecs: a seeded PRNG and ways to cut a byte stream into chunks.

/** xorshift32: deterministic, so a failing fuzz case reproduces from its seed. */
export class Xorshift {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0 || 0x9e3779b9;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

/** `buf` cut at random points into views (pieces of 1 to `maxPiece` bytes). */
export function randomSplits(buf: Buffer, rng: Xorshift, maxPiece = 16): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < buf.length;) {
    const n = 1 + rng.below(maxPiece);
    pieces.push(buf.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

/** `buf` one byte per chunk. */
export function byteSplits(buf: Buffer): Buffer[] {
  return Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1));
}

/** Push `chunks` into a reader, calling `next()` after each until it returns undefined. */
export function drain<T>(reader: { push(chunk: Buffer): void; next(): T | undefined }, chunks: Buffer[]): T[] {
  const out: T[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let item = reader.next(); item !== undefined; item = reader.next()) out.push(item);
  }
  return out;
}

// Wire builders, so hand-made (often deliberately broken) frames read like the protocol docs.

/** A typed message: type byte, int32 length (`length` overrides the true one), body. */
export function frame(type: string, parts: Buffer[] = [], length?: number): Buffer {
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(length ?? 4 + body.length, 1);
  return Buffer.concat([header, body]);
}

/** An untyped startup-phase packet: int32 length (overridable), then the parts. */
export function packet(parts: Buffer[], length?: number): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([int32(length ?? 4 + body.length), body]);
}

export function cstr(value: string): Buffer {
  return Buffer.from(`${value}\0`, "utf8");
}

/** Signed or, for counts, unsigned: -32768 to 65535. */
export function int16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value & 0xffff);
  return out;
}

export function int32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeInt32BE(value);
  return out;
}
