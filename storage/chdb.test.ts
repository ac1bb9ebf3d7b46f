import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openChdb } from "./chdb.js";
import type { Executor } from "./executor.js";

/** `name String, n UInt32` rows in RowBinary. */
function rowBinary(rows: [string, number][]): Buffer {
  return Buffer.concat(
    rows.map(([name, n]) => {
      const row = Buffer.alloc(1 + name.length + 4);
      row[0] = name.length;
      row.write(name, 1, "latin1");
      row.writeUInt32LE(n, 1 + name.length);
      return row;
    }),
  );
}

describe("chDB executor: RowBinary inserts through a file", () => {
  let dir: string;
  let db: Executor;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-chdb-"));
    // What a process that crashed mid-insert leaves behind (pid 1 is never this test's).
    mkdirSync(join(dir, "inserts"), { recursive: true });
    writeFileSync(join(dir, "inserts", "1-0-7.rowbinary"), "left over");
    db = await openChdb(dir);
    await db.exec("CREATE TABLE t (name String, n UInt32) ENGINE = MergeTree ORDER BY name");
  });

  afterEach(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores the rows, removes its file, and removes files another process left", async () => {
    assert.deepEqual(readdirSync(join(dir, "inserts")), [], "the stale file is gone at open");
    await db.insertRowBinary(
      "t",
      ["name", "n"],
      rowBinary([
        ["a", 1],
        ["b", 2],
      ]),
    );
    assert.deepEqual(await db.query("SELECT name, n FROM t ORDER BY name"), [
      { name: "a", n: 1 },
      { name: "b", n: 2 },
    ]);
    assert.deepEqual(readdirSync(join(dir, "inserts")), []);
  });

  it("fails an insert it cannot write with the file system's error, and stores the next one", async () => {
    // A file where the directory should be: no file can be made under it.
    rmSync(join(dir, "inserts"), { recursive: true });
    writeFileSync(join(dir, "inserts"), "");
    await assert.rejects(
      db.insertRowBinary("t", ["name", "n"], rowBinary([["a", 1]])),
      (err: NodeJS.ErrnoException) => err.code === "EEXIST" || err.code === "ENOTDIR",
    );
    assert.deepEqual(await db.query("SELECT count() AS c FROM t"), [{ c: 0 }]);
    rmSync(join(dir, "inserts"));
    await db.insertRowBinary("t", ["name", "n"], rowBinary([["c", 3]]));
    assert.deepEqual(await db.query("SELECT name FROM t"), [{ name: "c" }]);
    assert.ok(existsSync(join(dir, "inserts")), "made again");
  });

  it("refuses a column list that is not plain names", async () => {
    await assert.rejects(
      db.insertRowBinary("t", ["name", "n) SELECT 1 --"], rowBinary([["a", 1]])),
      /not a column name/,
    );
  });

  it("rejects rows that do not match the columns, storing none", async () => {
    await assert.rejects(
      db.insertRowBinary("t", ["name", "n"], Buffer.from([5, 0x61])),
      /Cannot read all data|CANNOT_READ_ALL_DATA/,
    );
    assert.deepEqual(await db.query("SELECT count() AS c FROM t"), [{ c: 0 }]);
  });
});
