import { createHash, hash, type Hash } from "node:crypto";

const EMPTY = Buffer.alloc(0);

/** Rows gathered before one update of the hash: one native call per batch, not per row. */
const BATCH_ROWS = 256;

/**
 * SHA-256 over a result's DataRow bodies, in order. Most results of an OLTP session have one row:
 * that row is hashed in one call, and a hash object is made only when a second row comes. Large
 * results are hashed in batches of rows (the bodies are views into received chunks, which nothing
 * writes to, so holding them until the batch is hashed is safe).
 */
export class RowDigest {
  private pending: Buffer[] = [];
  private hash: Hash | undefined;
  private scratch = EMPTY;

  update(body: Buffer): void {
    this.pending.push(body);
    if (this.pending.length >= BATCH_ROWS) this.drain();
  }

  /**
   * Add the bodies of the whole DataRow messages lying back to back in `chunk[start, end)`: they are
   * copied once into a scratch buffer, their headers squeezed out in place, and hashed in one call.
   */
  updateRun(chunk: Buffer, start: number, end: number): void {
    const size = end - start;
    if (this.scratch.length < size) this.scratch = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    const scratch = this.scratch;
    scratch.set(chunk.subarray(start, end));
    let w = 0;
    for (let r = 0; r < size;) {
      const next =
        r + 1 + (((scratch[r + 1]! << 24) | (scratch[r + 2]! << 16) | (scratch[r + 3]! << 8) | scratch[r + 4]!) >>> 0);
      scratch.copyWithin(w, r + 5, next);
      w += next - r - 5;
      r = next;
    }
    this.drain();
    this.hash!.update(scratch.subarray(0, w));
  }

  hex(): string {
    if (!this.hash && this.pending.length <= 1) return hash("sha256", this.pending[0] ?? EMPTY, "hex");
    this.drain();
    return this.hash!.digest("hex");
  }

  private drain(): void {
    this.hash ??= createHash("sha256");
    if (this.pending.length > 0) this.hash.update(Buffer.concat(this.pending));
    this.pending = [];
  }
}
