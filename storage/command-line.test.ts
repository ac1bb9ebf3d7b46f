import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { EventChain, RecordingEvent, type EventBody } from "../lib/recording/chain.js";
import { generateKey } from "../lib/keys.js";
import type { Command } from "../proto/gen/vigil/v1/recording.js";
import { commandLineBytes, readCommandEvent, writeCommandLine } from "./command-line.js";
import { EventBatch } from "./event-batch.js";
import { eventLine } from "./rows.js";

/** A small deterministic PRNG: failures name their seed and can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// Pieces that JSON escapes, or that take several UTF-8 bytes, or none.
const PIECES = [
  "SELECT",
  " ",
  '"',
  "\\",
  "\n",
  "\t",
  "\u0001",
  "\u007f",
  "é",
  "日本",
  "😀",
  "\u2028",
  "\ufffd",
  "'",
  "{}",
  "[",
  "0",
];

function randomString(rand: () => number, max = 6): string {
  let s = "";
  const n = Math.floor(rand() * max);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(rand() * PIECES.length)];
  return s;
}

function randomList(rand: () => number): string[] {
  return Array.from({ length: Math.floor(rand() * 3) }, () => randomString(rand, 3));
}

function randomCommand(rand: () => number): Command {
  return {
    command: rand() < 0.2 ? 0 : rand() < 0.1 ? 0xffffffff : Math.floor(rand() * 1000),
    text: randomString(rand, 12),
    source: rand() < 0.5 ? "sql" : randomString(rand),
    kinds: randomList(rand),
    tablesRead: randomList(rand),
    tablesWritten: randomList(rand),
    params: Array.from({ length: Math.floor(rand() * 3) }, () => ({
      text: rand() < 0.3 ? undefined : randomString(rand),
    })),
    // 7 is no Decision: ts-proto keeps it and names it UNRECOGNIZED.
    decision: [0, 1, 2, 3, 7][Math.floor(rand() * 5)]!,
    rule: randomString(rand),
    reason: randomString(rand),
  };
}

const key = generateKey();

/** The fast path's line, as text, or undefined when it leaves the event to the generic path. */
function commandLine(bytes: Buffer) {
  const ev = readCommandEvent(bytes);
  if (!ev) return undefined;
  const room = commandLineBytes(ev);
  // Written after some other line, into a buffer exactly as large as the room it asked for.
  const out = Buffer.alloc(7 + room, 0xff);
  const end = writeCommandLine(ev, out, 7);
  assert.ok(end <= out.length, `wrote ${end - 7} bytes, asked for ${room}`);
  return { ...ev, line: out.toString("utf8", 7, end) };
}

function encoded(event: RecordingEvent): Buffer {
  return Buffer.from(RecordingEvent.encode(event).finish());
}

describe("commandLine", () => {
  it("gives the generic path's line, byte for byte, for every command event it takes", () => {
    let taken = 0;
    for (let seed = 1; seed <= 2000; seed++) {
      const rand = prng(seed);
      const chain = new EventChain(rand() < 0.1 ? `s-${randomString(rand)}` : `s-${seed}`);
      const body: EventBody = { $case: "command", value: randomCommand(rand) };
      const event =
        rand() < 0.2
          ? chain.seal(body, key.privateKey, BigInt(1_700_000_000_000_000 + seed))
          : chain.append(body, BigInt(Math.floor(rand() * 2 ** 52)));
      const bytes = encoded(event);
      const expected = eventLine(RecordingEvent.decode(bytes));
      const fast = commandLine(bytes);
      if (!fast) {
        assert.fail(`seed ${seed}: not taken: ${expected}`);
        continue;
      }
      taken++;
      assert.equal(fast.line, expected, `seed ${seed}`);
      assert.equal(fast.sessionId, event.sessionId);
      assert.equal(fast.seq, Number(event.seq));
      assert.equal(fast.timeUs, event.timeUs);
      const decoded = RecordingEvent.decode(bytes).body;
      assert.ok(decoded?.$case === "command");
      assert.equal(fast.command, decoded.value.command);
      assert.equal(fast.decision, decoded.value.decision);
    }
    assert.equal(taken, 2000);
  });

  it("stays within the room it asks for, however many characters need escaping", () => {
    const chain = new EventChain("\u0001".repeat(50));
    const ctl = "\u0001".repeat(300);
    const event = chain.seal(
      {
        $case: "command",
        value: {
          command: 1,
          text: ctl,
          source: ctl,
          kinds: ["", ctl, ""],
          tablesRead: ["", ""],
          tablesWritten: [ctl],
          params: [{ text: "" }, { text: undefined }, { text: ctl }],
          decision: 3,
          rule: ctl,
          reason: "",
        },
      },
      key.privateKey,
    );
    const bytes = encoded(event);
    assert.equal(commandLine(bytes)?.line, eventLine(RecordingEvent.decode(bytes)));
  });

  it("builds the same batch (lines and session summaries) as decoding each event (EventBatch.fromEncoded)", () => {
    const chain = new EventChain("s-batch");
    const events = [
      chain.append({ $case: "output", value: { command: 0, stream: 1, data: "hello" } }),
      ...[1, 2, 3].map((n) =>
        chain.append({ $case: "command", value: { ...randomCommand(prng(n)), command: n, decision: n } }),
      ),
    ];
    const generic = new EventBatch();
    for (const ev of events) generic.add(RecordingEvent.decode(encoded(ev)));
    // Back to back, as the local sink hands them over.
    const parts = events.map(encoded);
    const ends = parts.map((_, i) => parts.slice(0, i + 1).reduce((n, p) => n + p.length, 0));
    const fast = EventBatch.fromEncoded(Buffer.concat(parts), ends);
    // Both kinds were in it: the output event took the generic path, the commands the fast one.
    assert.equal(readCommandEvent(encoded(events[0]!)), undefined);
    assert.ok(readCommandEvent(encoded(events[1]!)));
    assert.deepEqual(fast.lines().payload, generic.lines().payload);
    assert.deepEqual(fast.sessionRows(), generic.sessionRows());
    assert.deepEqual(fast.sessionRanges(), generic.sessionRanges());
    assert.equal(fast.firstUs, generic.firstUs);
    assert.equal(fast.lastUs, generic.lastUs);
  });

  it("leaves to the generic path whatever it does not read exactly as it does", () => {
    const chain = new EventChain("s-odd");
    const command = chain.append({ $case: "command", value: randomCommand(prng(7)) });
    const good = encoded(command);
    assert.ok(commandLine(good), "the unaltered event is taken");
    const noBody = encoded({ ...command, body: undefined });
    const field = (n: number, wire: number, write: (w: BinaryWriter) => void) => {
      const w = new BinaryWriter();
      w.tag(n, wire);
      write(w);
      return Buffer.from(w.finish());
    };
    const cases: Record<string, Buffer> = {
      "another body type": encoded(chain.append({ $case: "sessionEnd", value: { error: "", commands: 1 } })),
      "an unknown field": Buffer.concat([good, field(40, 0, (w) => w.uint32(1))]),
      "a field twice": Buffer.concat([good, field(2, 2, (w) => w.string("s-odd"))]),
      "a field with another wire type": Buffer.concat([good, field(3, 2, (w) => w.string("1"))]),
      "an unknown Command field": Buffer.concat([
        noBody,
        field(11, 2, (w) =>
          w.bytes(Buffer.concat([field(1, 0, (x) => x.uint32(1)), field(30, 0, (x) => x.uint32(1))])),
        ),
      ]),
      "a negative decision": Buffer.concat([noBody, field(11, 2, (w) => w.bytes(field(8, 0, (x) => x.int32(-1))))]),
      "a lone surrogate (which TextEncoder writes as U+FFFD; this one is written raw)": Buffer.concat([
        noBody,
        field(11, 2, (w) => w.bytes(field(2, 2, (x) => x.bytes(Buffer.from([0x61, 0xed, 0xa0, 0x80]))))),
      ]),
      "invalid UTF-8": Buffer.concat([
        noBody,
        field(11, 2, (w) => w.bytes(field(2, 2, (x) => x.bytes(Buffer.from([0x61, 0xc3]))))),
      ]),
      "a seq beyond 2^53": encoded({ ...command, seq: 2n ** 60n }),
      "a negative time": encoded({ ...command, timeUs: -5n }),
      "another format version": encoded({ ...command, version: 2 }),
      "no session id": encoded({ ...command, sessionId: "" }),
      "a short hash": encoded({ ...command, hash: Buffer.alloc(31) }),
      "a truncated message": good.subarray(0, good.length - 3),
    };
    for (const [what, bytes] of Object.entries(cases)) assert.equal(commandLine(bytes), undefined, what);
  });
});
