import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Spool, type SpoolRecord } from "./spool.js";

const record = (i: number, size = 100): Buffer => Buffer.alloc(size, i % 251).fill(`record ${i};`, 0, 12);

async function readAll(spool: Spool): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = [];
  for (;;) {
    const got = await spool.read(64);
    if (got.length === 0) return out;
    out.push(...got);
  }
}

const segmentFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".spool"))
    .sort();

describe("Spool", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "vigil-spool-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("gives records back in the order appended, across segment files, after they are durable", async () => {
    const spool = Spool.open(dir, { maxBytes: 1 << 20, segmentBytes: 1000 });
    for (let i = 0; i < 50; i++) assert.equal(spool.append(record(i)), true);
    assert.equal(spool.drained, false);
    await spool.sync();
    assert.ok(segmentFiles(dir).length >= 5, `rotated into ${segmentFiles(dir).length} files`);
    for (const f of segmentFiles(dir)) assert.ok(statSync(join(dir, f)).size <= 1000);
    const got = await readAll(spool);
    assert.deepEqual(
      got.map((r) => r.payload),
      Array.from({ length: 50 }, (_, i) => record(i)),
    );
    assert.equal(spool.drained, true);
    await spool.release(got[got.length - 1]!.next);
    assert.equal(segmentFiles(dir).length, 1, "only the segment being written stays");
    await spool.clear();
    assert.deepEqual(segmentFiles(dir), []);
    assert.equal(spool.bytes, 0);
    await spool.close();
  });

  it("refuses appends beyond maxBytes, and takes them again once released", async () => {
    const spool = Spool.open(dir, { maxBytes: 1000, segmentBytes: 500 });
    let accepted = 0;
    while (spool.append(record(accepted))) accepted++;
    assert.equal(accepted, 9, "9 records of 108 bytes fit in 1000");
    assert.ok(spool.bytes <= 1000);
    await spool.sync();
    const got = await readAll(spool);
    assert.equal(got.length, 9);
    await spool.release(got[got.length - 1]!.next);
    assert.ok(spool.bytes < 1000 - 108, `freed: ${spool.bytes}`);
    assert.equal(spool.append(record(99)), true);
    await spool.close();
  });

  it("reads a spool left by an earlier process, and a new process never appends to its files", async () => {
    const first = Spool.open(dir, { maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) first.append(record(i));
    await first.sync();
    await first.close();
    const second = Spool.open(dir, { maxBytes: 1 << 20 });
    assert.equal(second.drained, false);
    assert.equal(second.bytes, 10 * 108);
    for (let i = 10; i < 15; i++) second.append(record(i));
    await second.sync();
    assert.equal(segmentFiles(dir).length, 2);
    const got = await readAll(second);
    assert.deepEqual(
      got.map((r) => r.payload),
      Array.from({ length: 15 }, (_, i) => record(i)),
    );
    await second.close();
  });

  it("detects a torn last record after a crash, skips it, and reads on in the next segment", async () => {
    const first = Spool.open(dir, { maxBytes: 1 << 20 });
    for (let i = 0; i < 5; i++) first.append(record(i));
    await first.sync();
    await first.close();
    const [file] = segmentFiles(dir);
    // A crash in the middle of a write: the last record lost its tail.
    truncateSync(join(dir, file!), 5 * 108 - 30);
    const corrupt: string[] = [];
    const second = Spool.open(dir, {
      maxBytes: 1 << 20,
      onCorrupt: (_f, offset, reason) => corrupt.push(`${offset} ${reason}`),
    });
    second.append(record(100));
    await second.sync();
    const got = await readAll(second);
    assert.deepEqual(
      got.map((r) => r.payload),
      [record(0), record(1), record(2), record(3), record(100)],
    );
    assert.deepEqual(corrupt, [`${4 * 108} torn record at the end of the segment`]);
    assert.equal(second.drained, true);
    await second.close();
  });

  it("detects a torn header and a damaged record (checksum) and goes on without crashing", async () => {
    const first = Spool.open(dir, { maxBytes: 1 << 20, segmentBytes: 300 });
    for (let i = 0; i < 6; i++) first.append(record(i));
    await first.sync();
    await first.close();
    const [a, b, c] = segmentFiles(dir);
    assert.ok(c, "three segments of two records each");
    appendFileSync(join(dir, a!), Buffer.from([0, 0])); // half a header
    // One payload byte of the first record in segment b changed on disk.
    const fh = await open(join(dir, b!), "r+");
    await fh.write(Buffer.from([0xff]), 0, 1, 8 + 50);
    await fh.close();
    const corrupt: string[] = [];
    const spool = Spool.open(dir, { maxBytes: 1 << 20, onCorrupt: (_f, _o, reason) => corrupt.push(reason) });
    const got = await readAll(spool);
    assert.deepEqual(
      got.map((r) => r.payload),
      [record(0), record(1), record(4), record(5)],
    );
    assert.deepEqual(corrupt, ["torn record header at the end of the segment", "checksum mismatch"]);
    await spool.close();
  });

  it("rewinds to a record so it is read again", async () => {
    const spool = Spool.open(dir, { maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) spool.append(record(i));
    await spool.sync();
    const got = await readAll(spool);
    spool.rewind(got[6]!.at);
    assert.deepEqual(
      (await readAll(spool)).map((r) => r.payload),
      [record(6), record(7), record(8), record(9)],
    );
    await spool.close();
  });
});
