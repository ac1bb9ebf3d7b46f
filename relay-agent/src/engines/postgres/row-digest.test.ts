import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { dataRow } from "../../../../lib/pgwire/backend.js";
import { RowDigest } from "./row-digest.js";

describe("RowDigest", () => {
  it("is SHA-256 over the rows in order, for none, one and many rows", () => {
    for (const count of [0, 1, 2, 3, 100, 255, 256, 257, 1000]) {
      const rows = Array.from({ length: count }, (_, i) => randomBytes(i % 7 === 0 ? 0 : 1 + i));
      const d = new RowDigest();
      for (const r of rows) d.update(r);
      const expected = createHash("sha256");
      for (const r of rows) expected.update(r);
      assert.equal(d.hex(), expected.digest("hex"), `${count} rows`);
    }
  });

  it("gives the same digest when rows come as runs of whole DataRows in a chunk", () => {
    for (const count of [1, 2, 5, 300, 3000]) {
      const values = Array.from({ length: count }, (_, i) => [randomBytes(i % 40), i % 3 ? null : randomBytes(7)]);
      const expected = createHash("sha256");
      const one = new RowDigest();
      const mixed = new RowDigest();
      const messages = values.map((v) => dataRow(v));
      for (const m of messages) {
        expected.update(m.subarray(5));
        one.update(m.subarray(5));
      }
      // The first rows one by one, then the rest in runs of random lengths.
      const first = Math.min(3, count);
      for (const m of messages.slice(0, first)) mixed.update(m.subarray(5));
      for (let i = first; i < count;) {
        const n = 1 + Math.floor(Math.random() * 500);
        const chunk = Buffer.concat([Buffer.from("xx"), ...messages.slice(i, i + n)]);
        mixed.updateRun(chunk, 2, chunk.length);
        i += n;
      }
      const hex = expected.digest("hex");
      assert.equal(one.hex(), hex, `${count} rows one by one`);
      assert.equal(mixed.hex(), hex, `${count} rows in runs`);
    }
  });
});
