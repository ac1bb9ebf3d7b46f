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

  /** A session of `commands` statements, and the store counting its inserts. */
  function setUp(id: string, commands: number) {
    const events = recordSession(
      {
        id,
        user: "ann",
        segment: "eu",
        start: "2026-01-02T03:04:05Z",
        commands: Array.from({ length: commands }, (_, i) => `SELECT ${i}`),
      },
      generateKey().privateKey,
    );
    const counted = Object.create(store) as RecordingStore & { inserts: number; started: Promise<void> };
    let started!: () => void;
    counted.started = new Promise<void>((resolve) => (started = resolve));
    counted.inserts = 0;
    counted.insertBatch = (batch, options) => {
      counted.inserts++;
      started();
      return store.insertBatch(batch, options);
    };
    return { events, counted };
  }

  async function storedSeqs(id: string): Promise<number[]> {
    return (await store.sessionEvents(id)).map((e) => Number(e.seq));
  }

  it("gathers a steady stream into one insert per batch window, not one after another", async () => {
    const { events, counted } = setUp("s-steady", 300);
    const windowMs = 300;
    const sink = new LocalSink(async () => counted, new LocalLiveFeed(), createLogger("silent"), undefined, windowMs);
    await sink.ready();
    const started = performance.now();
    // A few events every 8 ms, as a busy session writes them.
    for (let i = 0; i < events.length; i++) {
      sink.write(events[i]!);
      if (i % 3 === 2) await sleep(8);
    }
    const elapsed = performance.now() - started;
    await sink.close();
    assert.ok(elapsed > 3 * windowMs, `the writes took ${Math.round(elapsed)} ms: too fast to show the batching`);
    // Inserting again as soon as one finished made many more (26 in 1.8 s with 1 s windows).
    const most = Math.ceil(elapsed / windowMs) + 1;
    assert.ok(counted.inserts <= most, `${counted.inserts} inserts in ${Math.round(elapsed)} ms (at most ${most})`);
    assert.ok(counted.inserts >= 2, `${counted.inserts} insert(s): the stream was not stored as it came`);
    assert.deepEqual(
      await storedSeqs("s-steady"),
      events.map((e) => Number(e.seq)),
    );
  });

  it("stores at once on flush (a session's end) whatever the batch window, also while an insert runs", async () => {
    const { events, counted } = setUp("s-flush", 40);
    // A window longer than the test's timeout: only flush can store these events in time.
    const sink = new LocalSink(async () => counted, new LocalLiveFeed(), createLogger("silent"), undefined, 600_000);
    await sink.ready();
    const half = events.length >> 1;
    for (const e of events.slice(0, half)) sink.write(e);
    const first = sink.flush();
    await counted.started;
    // Written while the first flush's insert is running: the second flush must not wait the window.
    for (const e of events.slice(half)) sink.write(e);
    await Promise.all([first, sink.flush()]);
    assert.equal(counted.inserts, 2);
    assert.deepEqual(
      await storedSeqs("s-flush"),
      events.map((e) => Number(e.seq)),
    );
    await sink.close();
  });
});
