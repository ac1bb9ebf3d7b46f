import { createHash, hash, type Hash } from "node:crypto";

/**
 * SHA-256 over a result's DataRow bodies, in order. Most results of an OLTP session have one row:
 * that row is hashed in one call, and a hash object is made only when a second row comes.
 */
export class RowDigest {
  private first: Buffer | undefined;
  private hash: Hash | undefined;

  update(body: Buffer): void {
    if (this.hash) this.hash.update(body);
    else if (!this.first) this.first = body;
    else {
      this.hash = createHash("sha256").update(this.first).update(body);
      this.first = undefined;
    }
  }

  hex(): string {
    return this.hash ? this.hash.digest("hex") : hash("sha256", this.first ?? EMPTY, "hex");
  }
}

const EMPTY = Buffer.alloc(0);
