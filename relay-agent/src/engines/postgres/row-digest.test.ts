import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
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
});
