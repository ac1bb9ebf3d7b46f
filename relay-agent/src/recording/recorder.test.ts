import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKey } from "../../../lib/keys.js";
import { RecordingEvent, verifyChain } from "../../../lib/recording/chain.js";
import { FileSink, Recorder } from "./recorder.js";

const start = {
  $case: "sessionStart" as const,
  value: {
    connection: "db",
    connectionType: "postgres",
    segment: "local",
    relayId: "r1",
    hubId: "h1",
    user: "agent",
    groups: [],
    clientAddress: "127.0.0.1",
    params: [],
    target: "127.0.0.1:5432",
  },
};

describe("Recorder over FileSink", () => {
  it("chains every event, signs the last one, and writes them in order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rec-"));
    const key = generateKey();
    try {
      const rec = await new Recorder(new FileSink(dir), key.privateKey).open("s1");
      assert.equal(rec.ok(), true);
      rec.record(start);
      for (let i = 1; i <= 1000; i++) {
        rec.record({ $case: "error", value: { code: "x", message: `e${i}` } });
      }
      await rec.end({ error: "" });
      const events = readFileSync(join(dir, "s1.ndjson"), "utf8")
        .trim()
        .split("\n")
        .map((l) => RecordingEvent.fromJSON(JSON.parse(l)));
      assert.equal(events.length, 1002);
      assert.deepEqual(
        events.map((e) => Number(e.seq)),
        [...Array(1002).keys()],
      );
      assert.deepEqual(verifyChain(events, key.publicRaw), { ok: true, events: 1002 });
      assert.equal(events[1001]!.body?.$case, "sessionEnd");
      // Another relay's key does not verify it.
      assert.equal(verifyChain(events, generateKey().publicRaw).ok, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to open a session it cannot record (fail closed)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rec-"));
    const recorder = new Recorder(new FileSink(dir), generateKey().privateKey);
    rmSync(dir, { recursive: true, force: true });
    await assert.rejects(recorder.open("s2"), { code: "recording_unavailable" });
  });
});
