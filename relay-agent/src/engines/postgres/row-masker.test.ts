import assert from "node:assert/strict";
import { compileMasker } from "../../../../lib/masking/index.js";
import { dataRow, decodeDataRow, type RowField } from "../../../../lib/pgwire/backend.js";
import { RowMasker } from "./row-masker.js";

const field = (name: string, typeOid: number, format: 0 | 1, tableOid = 0): RowField => ({
  name,
  tableOid,
  column: 0,
  typeOid,
  typeSize: -1,
  typeMod: -1,
  format,
});

describe("RowMasker on DataRows", () => {
  const masker = compileMasker({ detectors: ["card"], columns: ["email", "accounts.balance"], fields: [] });
  const fields = [
    field("id", 23, 1),
    field("email", 25, 0),
    field("note", 25, 0),
    field("balance", 23, 1, 42),
    field("empty", 25, 0),
  ];
  const rows = new RowMasker(masker, fields, (oid) => (oid === 42 ? "public.accounts" : undefined), true);

  it("rewrites only masked values, recomputes lengths, and turns masked binary non-text values into NULL", () => {
    const id = Buffer.from([0, 0, 0, 7]);
    const body = dataRow([
      id,
      Buffer.from("ann@example.com"),
      Buffer.from("card 4111 1111 1111 1111"),
      id,
      null,
    ]).subarray(5);
    const out = rows.maskRow(body);
    assert.ok(out);
    assert.equal(out[0], 0x44);
    assert.equal(out.readInt32BE(1), out.length - 1);
    const values = decodeDataRow(out.subarray(5));
    assert.deepEqual(values[0], id);
    assert.equal(values[1]!.toString(), "[masked]");
    assert.equal(values[2]!.toString(), "card [masked:card]");
    assert.equal(values[3], null, "a binary int4 of a masked column cannot hold a placeholder");
    assert.equal(values[4], null);
  });

  it("computes a whole replacement from each value when it depends on the value (partial), also in jsonb", () => {
    const partial = compileMasker({ detectors: [], columns: ["email", "doc"], fields: [], replacement: "partial" });
    const m = new RowMasker(partial, [field("email", 25, 0), field("doc", 3802, 1)], () => undefined, false);
    const out = m.maskRow(dataRow([Buffer.from("bob@example.com"), Buffer.from('\x01"x"')]).subarray(5));
    const values = decodeDataRow(out!.subarray(5));
    assert.equal(values[0]!.toString(), "***@example.com");
    assert.deepEqual(values[1], Buffer.from("\x01[masked]"), "jsonb keeps its version byte");
    const redact = compileMasker({ detectors: [], columns: ["email", "doc"], fields: [] });
    const r = new RowMasker(redact, [field("email", 25, 0), field("doc", 3802, 1)], () => undefined, false);
    const redacted = decodeDataRow(
      r.maskRow(dataRow([Buffer.from("b@x.io"), Buffer.from('\x01"x"')]).subarray(5))!.subarray(5),
    );
    assert.deepEqual(redacted, [Buffer.from("[masked]"), Buffer.from("\x01[masked]")]);
  });

  it("returns undefined (forward as is) when nothing matched", () => {
    const clean = new RowMasker(masker, [field("note", 25, 0)], () => undefined, true);
    assert.equal(clean.maskRow(dataRow([Buffer.from("nothing here")]).subarray(5)), undefined);
    const chunk = Buffer.concat([dataRow([Buffer.from("nothing")]), dataRow([null]), dataRow([Buffer.from("here")])]);
    const run = clean.maskRun(chunk, 0, chunk.length);
    assert.equal(run.buffer, chunk.buffer, "a run with nothing to mask is a slice of the chunk, not a copy");
    assert.deepEqual(run, chunk);
    assert.equal(new RowMasker(masker, [field("id", 23, 0)], () => undefined, false).active, false);
  });

  it("rewrites rows of every mix of growing, shrinking, nulled and kept values like the masker alone would", () => {
    // Values the masker replaces by something longer, shorter, or NULL, in random order and counts.
    const partial = compileMasker({ detectors: ["card", "email"], columns: ["email", "accounts.balance"], fields: [] });
    const partialRows = new RowMasker(partial, fields, (oid) => (oid === 42 ? "public.accounts" : undefined), true);
    const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;
    const notes = ["", "plain", "card 4111 1111 1111 1111 and 5500 0000 0000 0004", "x@y.io", "é ünïcode"];
    const emails = ["a@b.co", "a.very.long.address.for.masking@example.com"];
    for (let round = 0; round < 500; round++) {
      const values = [
        pick([Buffer.from([0, 0, 0, round & 0xff]), null]),
        pick([...emails.map((e) => Buffer.from(e)), null]),
        pick([...notes.map((t) => Buffer.from(t)), null]),
        pick([Buffer.from([0, 0, 1, 0]), null]),
        pick([Buffer.from("end"), null]),
      ];
      for (const [m, r] of [
        [masker, rows],
        [partial, partialRows],
      ] as const) {
        const out = r.maskRow(dataRow(values).subarray(5));
        const expected = [
          values[0],
          values[1] && Buffer.from(m.maskWhole(values[1].toString())),
          values[2] && (m.maskBuffer(values[2]) ?? values[2]),
          null,
          values[4] && (m.maskBuffer(values[4]) ?? values[4]),
        ];
        if (!out) {
          assert.deepEqual(values, expected);
          continue;
        }
        assert.equal(out.readInt32BE(1), out.length - 1);
        assert.deepEqual(decodeDataRow(out.subarray(5)), expected);
      }
    }
  });

  it("masks a run of rows in a chunk exactly as row by row, growing past its headroom when it must", () => {
    // Short emails masked by a long partial mask grow each row; a run of many such rows outgrows the
    // room maskRun keeps in front of its copy, so the reallocation is exercised too.
    const growing = compileMasker({
      detectors: ["card", "email"],
      columns: ["email"],
      fields: [],
      replacement: "partial",
    });
    const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;
    const notes = ["", "plain", "card 4111 1111 1111 1111", "x@y.io"];
    const emails = ["", "a@b.co", "a.very.long.address.for.masking@example.com", ""];
    for (const m of [masker, growing]) {
      const r = new RowMasker(m, fields, (oid) => (oid === 42 ? "public.accounts" : undefined), true);
      for (let round = 0; round < 50; round++) {
        const rows = Array.from({ length: 1 + Math.floor(Math.random() * 400) }, (_, i) =>
          dataRow([
            pick([Buffer.from([0, 0, 0, i & 0xff]), null]),
            pick([...emails.map((e) => Buffer.from(e)), null]),
            pick([...notes.map((t) => Buffer.from(t)), null]),
            pick([Buffer.from([0, 0, 1, 0]), null]),
            pick([Buffer.from("end"), null]),
          ]),
        );
        const lead = Buffer.from("junk before");
        const chunk = Buffer.concat([lead, ...rows, Buffer.from("after")]);
        const expected = Buffer.concat(rows.map((row) => r.maskRow(row.subarray(5)) ?? row));
        const before = Buffer.from(chunk);
        assert.deepEqual(r.maskRun(chunk, lead.length, chunk.length - 5), expected);
        assert.deepEqual(chunk, before, "the received chunk is not written to");
      }
    }
    // Every row grows (an empty value becomes "[masked]"): far past the room kept in front.
    const only = new RowMasker(masker, [field("email", 25, 0)], () => undefined, false);
    const rows = Array.from({ length: 2000 }, () => dataRow([Buffer.alloc(0)]));
    const chunk = Buffer.concat(rows);
    const out = only.maskRun(chunk, 0, chunk.length);
    assert.deepEqual(out, Buffer.concat(rows.map(() => dataRow([Buffer.from("[masked]")]))));
  });

  it("refuses a value that runs past the message instead of passing it", () => {
    const body = dataRow([Buffer.from("ann@example.com")]).subarray(5);
    assert.throws(() => rows.maskRow(body.subarray(0, body.length - 3)), RangeError);
    // In a run, a row whose value claims more than its message holds.
    const good = dataRow([Buffer.from("ann@example.com")]);
    const bad = Buffer.from(good);
    bad.writeInt32BE(40, 7);
    const chunk = Buffer.concat([good, bad, good]);
    assert.throws(() => rows.maskRun(chunk, 0, chunk.length), RangeError);
  });
});
