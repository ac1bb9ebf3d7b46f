import { createHash, hash, type Hash } from "node:crypto";

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

  update(body: Buffer): void {
    this.pending.push(body);
    if (this.pending.length >= BATCH_ROWS) this.drain();
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

const EMPTY = Buffer.alloc(0);
