import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKey } from "../lib/keys.js";
import { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { openChdb } from "./chdb.js";
import type { Executor } from "./executor.js";
import { InsertThread } from "./insert-thread.js";
import { RecordingStore } from "./recordings.js";
import { recordSession } from "./testing/sessions.js";

const key = generateKey();

/** Events as the local sink hands them over: protobufs back to back, and where each ends. */
function encode(events: RecordingEvent[]): { bytes: Uint8Array; ends: Uint32Array } {
  const parts = events.map((ev) => RecordingEvent.encode(ev).finish());
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const ends = new Uint32Array(parts.length);
  let at = 0;
  parts.forEach((p, i) => {
    bytes.set(p, at);
    ends[i] = at += p.length;
  });
  return { bytes, ends };
}

describe("InsertThread (chDB inserts from a worker thread)", function () {
  let dir: string;
  let db: Executor;
  let store: RecordingStore;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-insert-thread-"));
    db = await openChdb(dir);
    store = await RecordingStore.open(db, { retentionDays: 0 });
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("stores the events it is handed where this thread's store reads them, chain and signature intact", async () => {
    const spec = { id: "s-thread", user: "ann", segment: "eu", start: "2026-01-02T03:04:05Z" };
    const events = recordSession({ ...spec, commands: ["SELECT 1", "SELECT 'ünïcode' AS x"] }, key.privateKey);
    const thread = await InsertThread.open(dir);
    try {
      await thread.insert({ ...encode(events.slice(0, 3)), mayBeStored: false, nice: 0 });
      await thread.insert({ ...encode(events.slice(3)), mayBeStored: false, nice: 0 });
      // A retry of a batch that was stored already adds nothing.
      await thread.insert({ ...encode(events.slice(3)), mayBeStored: true, nice: 0 });
    } finally {
      await thread.close();
    }
    const stored = await store.sessionEvents("s-thread");
    assert.deepEqual(
      stored.map((e) => Number(e.seq)),
      events.map((e) => Number(e.seq)),
    );
    assert.deepEqual(stored.at(-1)!.body, events.at(-1)!.body);
    assert.deepEqual(await store.verifySession("s-thread", key.publicRaw), { ok: true, events: events.length });
    assert.equal((await store.getSession("s-thread"))?.user, "ann");
  });

  it("refuses inserts once closed, and reopens on the same directory", async () => {
    const thread = await InsertThread.open(dir);
    await thread.close();
    assert.equal(thread.ok(), false);
    await assert.rejects(thread.insert({ ...encode([]), mayBeStored: false, nice: 0 }), /closed/);
    const again = await InsertThread.open(dir);
    assert.equal(again.ok(), true);
    await again.close();
  });
});
