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

  it("keeps interleaved sessions apart, each in its own file and chain", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-rec-"));
    const key = generateKey();
    try {
      const recorder = new Recorder(new FileSink(dir), key.privateKey);
      const sessions = await Promise.all(["a", "b", "c"].map((id) => recorder.open(id)));
      for (const rec of sessions) rec.record(start);
      for (let i = 1; i <= 600; i++) {
        sessions[i % 3]!.record({ $case: "error", value: { code: "x", message: `e${i}` } });
        if (i % 100 === 0) await new Promise((r) => setTimeout(r, 12)); // let timed writes happen between bursts
      }
      await Promise.all(sessions.map((rec) => rec.end({ error: "" })));
      for (const id of ["a", "b", "c"]) {
        const events = readFileSync(join(dir, `${id}.ndjson`), "utf8")
          .trim()
          .split("\n")
          .map((l) => RecordingEvent.fromJSON(JSON.parse(l)));
        assert.equal(events.length, 202, id);
        assert.ok(events.every((e) => e.sessionId === id));
        assert.deepEqual(verifyChain(events, key.publicRaw), { ok: true, events: 202 });
      }
      await recorder.close();
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
