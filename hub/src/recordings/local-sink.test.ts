import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { generateKey } from "../../../lib/keys.js";
import { createLogger } from "../../../lib/log.js";
import { openChdb } from "../../../storage/chdb.js";
import type { Executor } from "../../../storage/executor.js";
import { RecordingStore } from "../../../storage/recordings.js";
import { recordSession } from "../../../storage/testing/sessions.js";
import { LocalLiveFeed } from "./live.js";
import { LocalSink } from "./local-sink.js";

describe("LocalSink (vigil up's recording queue)", function () {
  this.timeout(30_000);
  let dir: string;
  let db: Executor;
  let store: RecordingStore;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-local-sink-"));
    db = await openChdb(dir);
    store = await RecordingStore.open(db, { retentionDays: 0 });
  });
  after(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gathers a steady stream into one insert a second, and a flush does not wait for the window", async () => {
    const key = generateKey();
    const events = recordSession(
      {
        id: "s-steady",
        user: "ann",
        segment: "eu",
        start: "2026-01-02T03:04:05Z",
        commands: Array.from({ length: 300 }, (_, i) => `SELECT ${i}`),
      },
      key.privateKey,
    );
    let inserts = 0;
    const counted = Object.create(store) as RecordingStore;
    counted.insertBatch = (batch, options) => {
      inserts++;
      return store.insertBatch(batch, options);
    };
    const sink = new LocalSink(async () => counted, new LocalLiveFeed(), createLogger("silent"));
    await sink.ready();
    const started = performance.now();
    // Written over ~2.4 s, a few events every 8 ms, as a busy session would.
    const last = events.length - 1;
    for (let i = 0; i < last; i++) {
      sink.write(events[i]!);
      if (i % 3 === 2) await sleep(8);
    }
    const elapsed = performance.now() - started;
    // The session's end is stored at once: flush() must not sit out the rest of the batch window.
    sink.write(events[last]!);
    const flushStarted = performance.now();
    await sink.flush();
    const flushMs = performance.now() - flushStarted;
    await sink.close();

    // Inserting again as soon as one finishes made several a second under steady writes.
    assert.ok(elapsed > 1_500, `the writes took ${elapsed} ms: too fast to show the batching`);
    assert.ok(inserts <= Math.ceil(elapsed / 1_000) + 1, `${inserts} inserts in ${Math.round(elapsed)} ms`);
    assert.ok(flushMs < 900, `flush waited ${Math.round(flushMs)} ms`);
    const stored = await store.sessionEvents("s-steady");
    assert.deepEqual(
      stored.map((e) => Number(e.seq)),
      events.map((e) => Number(e.seq)),
    );
  });
});
