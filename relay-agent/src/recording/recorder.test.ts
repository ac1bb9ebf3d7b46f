import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileRecorder } from "./recorder.js";

describe("FileRecorder", () => {
  it("writes one NDJSON line per event, in order, with gap-free sequence numbers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rec-"));
    try {
      const rec = await new FileRecorder(dir).open("s1");
      assert.equal(rec.ok(), true);
      for (let i = 0; i < 1000; i++) rec.record({ type: "session_end", error: `e${i}` });
      await rec.end();
      const lines = readFileSync(join(dir, "s1.ndjson"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.equal(lines.length, 1000);
      assert.deepEqual(
        lines.map((l) => l.seq),
        [...Array(1000).keys()],
      );
      assert.equal(lines[999].error, "e999");
      assert.equal(lines[0].session, "s1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to open a session it cannot record (fail closed)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rec-"));
    const recorder = new FileRecorder(dir);
    rmSync(dir, { recursive: true, force: true });
    await assert.rejects(recorder.open("s2"), { code: "recording_unavailable" });
  });
});
