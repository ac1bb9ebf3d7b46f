// JetStreamSink against a real nats-server: batching, order per session, the disk spool while NATS
// is down, draining after a restart (of NATS and of the relay), and what happens when even the
// spool cannot keep events (block / continue).
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { VigilError } from "../../lib/errors.js";
import { generateKey } from "../../lib/keys.js";
import { createLogger } from "../../lib/log.js";
import { EventChain, RecordingEvent, verifyChain, type EventBody } from "../../lib/recording/chain.js";
import { RECORDING_STREAM } from "../../lib/recording/nats.js";
import { JetStreamSink, type JetStreamSinkOptions } from "../../relay-agent/src/recording/jetstream.js";
import { Recorder } from "../../relay-agent/src/recording/recorder.js";
import { startNats, type NatsHandle } from "../support/services.js";
import { eventually } from "../support/vigil.js";

const log = createLogger(process.env.VIGIL_TEST_LOG ?? "silent");

const command = (i: number): EventBody => ({
  $case: "command",
  value: {
    command: i,
    text: `SELECT * FROM orders WHERE id = ${i}`,
    source: "simple",
    kinds: ["select"],
    tablesRead: ["orders"],
    tablesWritten: [],
    params: [],
    decision: 1,
    rule: "",
    reason: "",
  },
});

const START: EventBody = {
  $case: "sessionStart",
  value: {
    connection: "db",
    connectionType: "postgres",
    segment: "seg-a",
    relayId: "r1",
    hubId: "h1",
    user: "agent",
    groups: [],
    clientAddress: "127.0.0.1",
    params: [],
    target: "127.0.0.1:5432",
  },
};

/** Several sessions' chains, handing out events round-robin like concurrent sessions would. */
class Sessions {
  readonly chains: EventChain[];
  private next = 0;
  constructor(count: number, prefix = "s") {
    this.chains = Array.from({ length: count }, (_, i) => new EventChain(`${prefix}${i}`));
  }
  event(): RecordingEvent {
    const chain = this.chains[this.next++ % this.chains.length]!;
    return chain.append(command(chain.length));
  }
  get total(): number {
    return this.chains.reduce((n, c) => n + c.length, 0);
  }
}

/** Every stored recording event, in stream order. */
async function readStream(url: string): Promise<RecordingEvent[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const { state } = await jsm.streams.info(RECORDING_STREAM);
    if (state.messages === 0) return [];
    const consumer = await jetstream(nc).consumers.get(RECORDING_STREAM, { deliver_policy: DeliverPolicy.All });
    const out: RecordingEvent[] = [];
    const messages = await consumer.consume();
    for await (const m of messages) {
      out.push(RecordingEvent.decode(m.data));
      if (m.info.pending === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** Each session's seqs exactly 0..n-1, in stream order (no gap, no duplicate, no reordering). */
function assertInOrder(events: RecordingEvent[], sessions: Sessions): void {
  const bySession = new Map<string, number[]>();
  for (const e of events) {
    const list = bySession.get(e.sessionId) ?? [];
    list.push(Number(e.seq));
    bySession.set(e.sessionId, list);
  }
  for (const chain of sessions.chains) {
    const seqs = bySession.get(chain.sessionId) ?? [];
    const firstWrong = seqs.findIndex((s, i) => s !== i);
    assert.equal(firstWrong, -1, `${chain.sessionId}: stored seq ${seqs[firstWrong]} at position ${firstWrong}`);
    assert.equal(seqs.length, chain.length, `${chain.sessionId}: ${seqs.length} of ${chain.length} events stored`);
  }
  assert.equal(events.length, sessions.total);
}

async function streamCount(url: string): Promise<number> {
  const nc: NatsConnection = await connect({ servers: url });
  try {
    return (await (await jetstreamManager(nc)).streams.info(RECORDING_STREAM)).state.messages;
  } catch {
    return -1;
  } finally {
    await nc.close();
  }
}

describe("JetStreamSink (real nats-server)", function () {
  this.timeout(120_000);
  let nats: NatsHandle;
  let dir: string;
  const sinks: JetStreamSink[] = [];

  const open = (options: Partial<JetStreamSinkOptions> = {}): JetStreamSink => {
    const sink = new JetStreamSink({
      servers: nats.url,
      name: "vigil-relay-test",
      segment: "seg-a",
      spool: { dir: join(dir, "spool"), maxBytes: 64 << 20, segmentBytes: 256 << 10 },
      onFailure: "block",
      log,
      publishTimeoutMs: 1000,
      retryMs: 200,
      ...options,
    });
    sinks.push(sink);
    return sink;
  };

  const spoolFiles = (): string[] => readdirSync(join(dir, "spool")).filter((f) => f.endsWith(".spool"));

  beforeEach(async () => {
    nats = await startNats();
    dir = mkdtempSync(join(tmpdir(), "vigil-jss-"));
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close()));
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes 10k events of 8 sessions, each stored once and in seq order", async () => {
    const sink = open();
    const sessions = new Sessions(8);
    await eventually("the sink publishes directly", () => (sink.spooling ? undefined : true));
    for (const c of sessions.chains) await sink.ready(c.sessionId);
    for (let i = 0; i < 10_000; i++) sink.write(sessions.event());
    await Promise.all(sessions.chains.map((c) => sink.flush(c.sessionId)));
    assert.equal(sink.spooling, false, "published directly, nothing spooled");
    assertInOrder(await readStream(nats.url), sessions);
    assert.deepEqual(spoolFiles(), []);
  });

  it("spools while NATS is down and drains in order when it is back; nothing lost or doubled", async () => {
    const sink = open();
    const sessions = new Sessions(6);
    await eventually("the sink publishes directly", () => (sink.spooling ? undefined : true));
    let writing = true;
    let spooledWhileDown = 0;
    // Events keep coming the whole time, as they would from running sessions.
    const writer = (async () => {
      while (writing) {
        for (let i = 0; i < 100; i++) sink.write(sessions.event());
        await sleep(5);
      }
    })();
    await sleep(700);
    await nats.kill();
    await eventually("events spooled", () => (sink.spooledBytes > 0 ? true : undefined));
    await sleep(1000);
    spooledWhileDown = sink.spooledBytes;
    await nats.restart();
    await sleep(1500);
    writing = false;
    await writer;
    await Promise.all(sessions.chains.map((c) => sink.flush(c.sessionId)));
    assert.ok(spooledWhileDown > 20_000, `spooled ${spooledWhileDown} bytes while NATS was down`);
    await eventually("the spool drains into the stream", async () =>
      (await streamCount(nats.url)) === sessions.total && sink.spooledBytes === 0 ? true : undefined,
    );
    assertInOrder(await readStream(nats.url), sessions);
    await eventually("spool files removed", () => (spoolFiles().length === 0 ? true : undefined));
    assert.equal(sink.lost, 0);
  });

  it("re-sends events whose publish was refused, in order behind nothing newer", async () => {
    const sink = open();
    const sessions = new Sessions(4);
    await eventually("the sink publishes directly", () => (sink.spooling ? undefined : true));
    for (let i = 0; i < 1000; i++) sink.write(sessions.event());
    await Promise.all(sessions.chains.map((c) => sink.flush(c.sessionId)));
    // The stream refuses new messages for a while: every publish gets an error ack.
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(RECORDING_STREAM);
    await jsm.streams.update(RECORDING_STREAM, { ...info.config, max_msgs: 1500, discard: DiscardPolicy.New });
    for (let i = 0; i < 3000; i++) sink.write(sessions.event());
    await Promise.all(sessions.chains.map((c) => sink.flush(c.sessionId)));
    await eventually("refused events spooled", () => (sink.spooledBytes > 0 ? true : undefined));
    await jsm.streams.update(RECORDING_STREAM, { ...info.config, max_msgs: -1 });
    await nc.close();
    for (let i = 0; i < 1000; i++) sink.write(sessions.event());
    await eventually("everything stored", async () =>
      (await streamCount(nats.url)) === sessions.total && sink.spooledBytes === 0 ? true : undefined,
    );
    assertInOrder(await readStream(nats.url), sessions);
  });

  it("a relay restarted with a non-empty spool drains it", async () => {
    const sessions = new Sessions(3);
    const first = open();
    await eventually("the sink publishes directly", () => (first.spooling ? undefined : true));
    for (let i = 0; i < 1000; i++) first.write(sessions.event());
    await nats.kill();
    for (let i = 0; i < 2000; i++) first.write(sessions.event());
    await first.close();
    assert.ok(spoolFiles().length > 0, "the first run left a spool");
    await nats.restart();
    const second = open();
    await eventually("the spool of the earlier run drains", async () =>
      (await streamCount(nats.url)) === sessions.total && spoolFiles().length === 0 ? true : undefined,
    );
    assert.equal(second.spooledBytes, 0);
    assertInOrder(await readStream(nats.url), sessions);
  });

  it("acks that come too late never get an event stored twice, even past the duplicate window", async () => {
    // A duplicate window far shorter than the time before events are sent again.
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: RECORDING_STREAM, subjects: ["vigil.rec.>"], duplicate_window: 100_000_000 });
    await nc.close();
    // Most acks arrive after their publish was given up.
    const sink = open({ publishTimeoutMs: 2, retryMs: 300 });
    const sessions = new Sessions(4);
    await eventually("the sink publishes directly", () => (sink.spooling ? undefined : true));
    for (let i = 0; i < 4000; i++) sink.write(sessions.event());
    await Promise.all(sessions.chains.map((c) => sink.flush(c.sessionId)));
    assert.equal(sink.spooling, true, "timeouts sent events to the spool");
    await eventually(
      "everything stored",
      async () => (!sink.spooling && (await streamCount(nats.url)) >= sessions.total ? true : undefined),
      60_000,
    );
    assertInOrder(await readStream(nats.url), sessions);
  });

  it("block: NATS down and the spool full → ok() false, new sessions refused, running ones told to end", async () => {
    await nats.kill();
    const failures: VigilError[] = [];
    const sink = open({ spool: { dir: join(dir, "spool"), maxBytes: 4096 }, onUnavailable: (e) => failures.push(e) });
    const sessions = new Sessions(1);
    await sink.ready("s0");
    for (let i = 0; i < 100; i++) sink.write(sessions.event());
    await sink.flush("s0");
    assert.equal(sink.ok(), false);
    assert.ok(sink.lost > 0);
    await assert.rejects(sink.ready("s-new"), (err: VigilError) => err.code === "recording_unavailable");
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!.code, "recording_unavailable");
    // NATS back: the spool drains and new sessions are welcome again.
    await nats.restart();
    await eventually("recording available again", () => (sink.ok() ? true : undefined));
    await sink.ready("s-new");
  });

  it("continue: sessions keep going, the loss is counted and put on record in the session", async () => {
    await nats.kill();
    const key = generateKey();
    const sink = open({ spool: { dir: join(dir, "spool"), maxBytes: 8192 }, onFailure: "continue" });
    const recorder = new Recorder(sink, key.privateKey);
    const rec = await recorder.open("c1");
    rec.record(START);
    for (let i = 1; i <= 100; i++) rec.record(command(i));
    assert.equal(rec.ok(), true);
    await eventually("events lost", () => (sink.lost > 0 ? true : undefined));
    const lost = sink.lost;
    await nats.restart();
    await eventually("spool drained", () => (sink.spooledBytes === 0 ? true : undefined));
    rec.record(command(101));
    await rec.end({ error: "" });
    const events = await readStream(nats.url);
    const gap = events.find((e) => e.body?.$case === "error");
    assert.ok(gap?.body?.$case === "error");
    assert.equal(gap.body.value.code, "recording_gap");
    assert.match(gap.body.value.message, new RegExp(`^${lost} recorded events \\(seq \\d+-100\\) were lost`));
    const verdict = verifyChain(events, key.publicRaw);
    assert.equal(verdict.ok, false);
    assert.match(verdict.ok ? "" : verdict.reason, /is missing/);
    // session_start, 101 commands, the gap's error event and session_end, less what was lost.
    assert.equal(events.length, 104 - lost);
  });
});
