import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "../test/support/services.js";

const here = fileURLToPath(new URL(".", import.meta.url));

// chDB binds one data directory per process: the engine runs in a child process of its own.
const CHILD = `
import { openChdb } from ${JSON.stringify(join(here, "chdb.ts"))};
import { engineKeepsUp, engineThreadNice, watchEngineThreads, ENGINE_NICE_YIELDING } from ${JSON.stringify(join(here, "engine-threads.ts"))};
const db = await openChdb(process.argv[2]);
await db.exec("CREATE TABLE t (a UInt64, b String) ENGINE = MergeTree ORDER BY a");
for (let i = 0; i < 20; i++) await db.insert("t", Array.from({ length: 500 }, (_, j) => ({ a: i * 500 + j, b: "x" })));
watchEngineThreads();
const yielding = Object.fromEntries(engineThreadNice());
engineKeepsUp(false);
const equal = Object.fromEntries(engineThreadNice());
engineKeepsUp(true);
const again = Object.fromEntries(engineThreadNice());
const [row] = await db.query("SELECT count() AS n FROM t");
await db.close();
console.log(JSON.stringify({ yielding, equal, again, expected: ENGINE_NICE_YIELDING, rows: Number(row.n) }));
`;

describe("embedded store threads", function () {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return;

  it("run below the data path's priority while the store keeps up, and as equals when it falls behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-engine-threads-"));
    try {
      const script = join(dir, "child.mts");
      writeFileSync(script, CHILD);
      const r = await run(process.execPath, ["--import", "tsx", script, join(dir, "db")], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
        yielding: Record<string, number>;
        equal: Record<string, number>;
        again: Record<string, number>;
        expected: number;
        rows: number;
      };
      assert.equal(out.rows, 10_000, "the store still stores");
      const names = Object.keys(out.yielding);
      assert.ok(
        names.some((n) => n.startsWith("MergeMutate")),
        `merge threads found: ${names.join(", ")}`,
      );
      assert.ok(!names.some((n) => n.startsWith("node:")), "Node's own threads are left alone");
      for (const nice of Object.values(out.yielding)) assert.equal(nice, out.expected);
      for (const nice of Object.values(out.equal)) assert.equal(nice, 0);
      for (const nice of Object.values(out.again)) assert.equal(nice, out.expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
