import assert from "node:assert/strict";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { EventChain, RecordingEvent, type EventBody } from "../lib/recording/chain.js";
import { generateKey } from "../lib/keys.js";
import type { Command, Output, Result, Stream } from "../proto/gen/vigil/v1/recording.js";
import { encodedRowBytes, readEncodedEvent, writeEncodedRow } from "./encoded-event.js";
import { EventBatch } from "./event-batch.js";
import { digits } from "./row-bytes.js";
import { eventRow } from "./rows.js";

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

const EDGES = [
  9n,
  10n,
  99_999_999n,
  100_000_000n,
  100_000_001n,
  1_000_000_000_000_000n - 1n,
  8_999_999_999_999_999n,
  9_007_199_199_999_999n,
  9_007_199_200_000_000n,
  BigInt(Number.MAX_SAFE_INTEGER),
];

/** A uint64 at the edges the fast path cares about: 0, small, the largest it takes, and beyond. */
function randomUint64(rand: () => number): bigint {
  const r = rand();
  if (r < 0.3) return 0n;
  if (r < 0.8) return BigInt(Math.floor(rand() * 100_000));
  // Decimal edges (the writer splits numbers of more than 8 digits in two) up to the largest it takes.
  if (r < 0.9) return EDGES[Math.floor(rand() * EDGES.length)]!;
  return r < 0.95 ? 2n ** 53n : 2n ** 64n - 1n;
}

function randomResult(rand: () => number): Result {
  const error = rand();
  return {
    command: rand() < 0.2 ? 0 : rand() < 0.1 ? 0xffffffff : Math.floor(rand() * 1000),
    tag: rand() < 0.5 ? "SELECT 1" : randomString(rand),
    rows: randomUint64(rand),
    bytes: randomUint64(rand),
    durationUs: randomUint64(rand),
    digest: rand() < 0.5 ? "ab".repeat(32) : randomString(rand),
    columns: randomList(rand),
    sample: Array.from({ length: Math.floor(rand() * 3) }, () => ({
      values: Array.from({ length: Math.floor(rand() * 3) }, () => ({
        text: rand() < 0.3 ? undefined : randomString(rand),
      })),
    })),
    exitStatus: rand() < 0.6 ? undefined : [0, 1, 255, 0x7fffffff, -1][Math.floor(rand() * 5)],
    exitSignal: rand() < 0.7 ? undefined : randomString(rand),
    error:
      error < 0.5
        ? undefined
        : error < 0.6
          ? { code: "", message: "" }
          : { code: randomString(rand), message: randomString(rand) },
  };
}

/** What the fast path leaves to the generic one: numbers it cannot hold exactly, negative ints. */
function resultTaken(r: Result): boolean {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return r.rows <= max && r.bytes <= max && r.durationUs <= max && (r.exitStatus ?? 0) >= 0;
}

function randomOutput(rand: () => number): Output {
  return {
    command: rand() < 0.2 ? 0 : Math.floor(rand() * 1000),
    // 9 is no Stream: ts-proto keeps it and names it UNRECOGNIZED.
    stream: [0, 1, 2, 3, 9][Math.floor(rand() * 5)]!,
    data: randomString(rand, 20),
  };
}

const key = generateKey();

/** The fast path's row, as hex, or undefined when it leaves the event to the generic path. */
function fastRow(bytes: Buffer) {
  const ev = readEncodedEvent(bytes);
  if (!ev) return undefined;
  const room = encodedRowBytes(ev);
  // Written after some other row, into a buffer exactly as large as the room it asked for.
  const out = Buffer.alloc(7 + room, 0xff);
  const end = writeEncodedRow(ev, out, 7);
  assert.ok(end <= out.length, `wrote ${end - 7} bytes, asked for ${room}`);
  return { ...ev, row: out.toString("hex", 7, end) };
}

/** The generic path's row, as hex. */
function genericRow(bytes: Buffer): string {
  return eventRow(RecordingEvent.decode(bytes)).toString("hex");
}

/** `count` random events of one type, sealed or appended, each checked against the generic path. */
function compareRandom(make: (rand: () => number) => { body: EventBody; taken: boolean }, count: number): number {
  let taken = 0;
  for (let seed = 1; seed <= count; seed++) {
    const rand = prng(seed);
    const chain = new EventChain(rand() < 0.1 ? `s-${randomString(rand)}` : `s-${seed}`);
    const { body, taken: expectTaken } = make(rand);
    const event =
      rand() < 0.2
        ? chain.seal(body, key.privateKey, BigInt(1_700_000_000_000_000 + seed))
        : chain.append(body, BigInt(Math.floor(rand() * 2 ** 52)));
    const bytes = encoded(event);
    const decoded = RecordingEvent.decode(bytes);
    const expected = genericRow(bytes);
    const fast = fastRow(bytes);
    assert.equal(fast !== undefined, expectTaken, `seed ${seed}: ${expectTaken ? "not taken" : "taken"}: ${expected}`);
    if (!fast) continue;
    taken++;
    assert.equal(fast.row, expected, `seed ${seed}`);
    assert.equal(fast.type, decoded.body?.$case);
    assert.equal(fast.env.sessionId, event.sessionId);
    assert.equal(fast.env.seq, Number(event.seq));
    assert.equal(fast.env.timeUs, event.timeUs);
    assert.ok(decoded.body && "command" in decoded.body.value);
    assert.equal(fast.command, decoded.body.value.command);
    if (fast.type === "command" && decoded.body.$case === "command")
      assert.equal(fast.decision, decoded.body.value.decision);
  }
  return taken;
}

function encoded(event: RecordingEvent): Buffer {
  return Buffer.from(RecordingEvent.encode(event).finish());
}

describe("readEncodedEvent", () => {
  it("writes integers below 2^53 as JSON does, at every decimal edge", () => {
    const rand = prng(53);
    const out = Buffer.alloc(32);
    const numbers = [0, 9, 10, 1e8 - 1, 1e8, 1e8 + 1, Number.MAX_SAFE_INTEGER];
    for (let k = 1; k < 90_071_992; k += 1 + Math.floor(rand() * 100_000))
      numbers.push(k * 1e8 - 1, k * 1e8, k * 1e8 + 1);
    for (let i = 0; i < 20_000; i++) numbers.push(Math.floor(rand() * 2 ** Math.floor(rand() * 54)));
    for (const n of numbers) assert.equal(out.toString("latin1", 0, digits(out, 0, n)), JSON.stringify(n), String(n));
  });

  it("gives the generic path's row, byte for byte, for every command and output event", () => {
    const bodies: [number, (rand: () => number) => EventBody][] = [
      [2000, (rand) => ({ $case: "command", value: randomCommand(rand) })],
      [1000, (rand) => ({ $case: "output", value: randomOutput(rand) })],
    ];
    for (const [count, body] of bodies)
      assert.equal(
        compareRandom((rand) => ({ body: body(rand), taken: true }), count),
        count,
      );
  });

  it("gives the generic path's row, byte for byte, for every result event it takes, and takes all but edge numbers", () => {
    const taken = compareRandom((rand) => {
      const value = randomResult(rand);
      return { body: { $case: "result", value }, taken: resultTaken(value) };
    }, 2000);
    // Most are taken; the others (uint64 beyond 2^53, a negative exit status) were checked to fall back.
    assert.ok(taken > 1000, `${taken} taken`);
  });

  it("writes the body's length in one, two or three bytes, at each edge", () => {
    // RowBinary's lengths are varints: bodies of up to 127 bytes, 16,383, and more.
    const chain = new EventChain("s-lengths");
    for (const edge of [128, 16_384])
      for (let n = edge - 40; n < edge + 10; n++) {
        const bytes = encoded(chain.append({ $case: "output", value: { command: 1, stream: 1, data: "x".repeat(n) } }));
        assert.equal(fastRow(bytes)?.row, genericRow(bytes), `data of ${n}`);
      }
    const big = encoded(
      chain.append({ $case: "output", value: { command: 1, stream: 1, data: "\u0001".repeat(40_000) } }),
    );
    assert.equal(fastRow(big)?.row, genericRow(big), "a body of 240,000 bytes");
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
    assert.equal(fastRow(bytes)?.row, genericRow(bytes));
    // Results and output: every string escaped, and many empty rows, values and columns (whose JSON
    // is longer than their protobuf).
    const empties = Array.from({ length: 200 }, () => ({ values: [] }));
    const emptyValues = [{ values: Array.from({ length: 200 }, () => ({ text: undefined })) }];
    for (const body of [
      {
        $case: "result",
        value: {
          command: 0xffffffff,
          tag: ctl,
          rows: BigInt(Number.MAX_SAFE_INTEGER),
          bytes: 1n,
          durationUs: BigInt(Number.MAX_SAFE_INTEGER),
          digest: ctl,
          columns: ["", "", ctl, ""],
          sample: [...empties, ...emptyValues, { values: [{ text: ctl }, { text: "" }] }],
          exitStatus: 0x7fffffff,
          exitSignal: ctl,
          error: { code: ctl, message: ctl },
        },
      },
      { $case: "output", value: { command: 0xffffffff, stream: 0x7fffffff as Stream, data: ctl } },
    ] satisfies EventBody[]) {
      const bytes = encoded(chain.append(body));
      assert.ok(fastRow(bytes), body.$case);
      assert.equal(fastRow(bytes)?.row, genericRow(bytes), body.$case);
    }
  });

  it("builds the same batch (rows and session summaries) as decoding each event (EventBatch.fromEncoded)", () => {
    const chain = new EventChain("s-batch");
    const other = new EventChain("s-other");
    const result = (command: number, error: Result["error"]): EventBody => ({
      $case: "result",
      value: { ...randomResult(prng(command)), command, rows: 1n, exitStatus: undefined, error },
    });
    const events = [
      chain.append({ $case: "output", value: { command: 0, stream: 1, data: "hello" } }),
      ...[1, 2, 3].flatMap((n) => [
        chain.append({ $case: "command", value: { ...randomCommand(prng(n)), command: n, decision: n } }),
        chain.append(
          result(n, n === 2 ? { code: "42501", message: "" } : n === 3 ? { code: "", message: "" } : undefined),
        ),
      ]),
      other.append(result(1, { code: "", message: "boom" })),
      chain.append({ $case: "result", value: { ...randomResult(prng(9)), rows: 2n ** 60n } }),
      chain.append({ $case: "error", value: { code: "x", message: "y" } }),
      chain.seal({ $case: "sessionEnd", value: { error: "", commands: 3 } }, key.privateKey),
    ];
    const generic = new EventBatch();
    for (const ev of events) generic.add(RecordingEvent.decode(encoded(ev)));
    // Back to back, as the local sink hands them over.
    const parts = events.map(encoded);
    const ends = parts.map((_, i) => parts.slice(0, i + 1).reduce((n, p) => n + p.length, 0));
    const fast = EventBatch.fromEncoded(Buffer.concat(parts), ends);
    // Both paths were in it: the last three events took the generic one, the others the fast one.
    assert.deepEqual(
      parts.map((p) => readEncodedEvent(p)?.type ?? "generic"),
      [
        "output",
        "command",
        "result",
        "command",
        "result",
        "command",
        "result",
        "result",
        "generic",
        "generic",
        "generic",
      ],
    );
    assert.deepEqual(fast.rows().payload, generic.rows().payload);
    assert.deepEqual(fast.sessionRows(), generic.sessionRows());
    assert.deepEqual(
      fast.sessionRows().map((r) => r.error_seqs),
      [[4, 8], [0]],
      "the results with an error code or message, and the error event",
    );
    assert.deepEqual(fast.sessionRanges(), generic.sessionRanges());
    assert.equal(fast.firstUs, generic.firstUs);
    assert.equal(fast.lastUs, generic.lastUs);
  });

  it("leaves to the generic path whatever it does not read exactly as it does", () => {
    const chain = new EventChain("s-odd");
    const command = chain.append({ $case: "command", value: randomCommand(prng(7)) });
    const good = encoded(command);
    assert.ok(fastRow(good), "the unaltered event is taken");
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
      "a Command's text twice": Buffer.concat([
        noBody,
        field(11, 2, (w) =>
          w.bytes(Buffer.concat([field(2, 2, (x) => x.string("a")), field(2, 2, (x) => x.string("b"))])),
        ),
      ]),
      "a Command's decision twice": Buffer.concat([
        noBody,
        field(11, 2, (w) => w.bytes(Buffer.concat([field(8, 0, (x) => x.int32(1)), field(8, 0, (x) => x.int32(2))]))),
      ]),
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
    const result = chain.append({
      $case: "result",
      value: { ...randomResult(prng(3)), exitStatus: 1, error: undefined },
    });
    const goodResult = encoded(result);
    assert.ok(fastRow(goodResult), "the unaltered result is taken");
    const resultBody = (...fields: Buffer[]) =>
      Buffer.concat([noBody, field(12, 2, (w) => w.bytes(Buffer.concat(fields)))]);
    const row = (...values: Buffer[]) =>
      field(8, 2, (w) => w.bytes(Buffer.concat(values.map((v) => field(1, 2, (x) => x.bytes(v))))));
    Object.assign(cases, {
      "two bodies": Buffer.concat([good, field(12, 2, (w) => w.bytes(Buffer.alloc(0)))]),
      "a tag that wraps to a body's in 32 bits": Buffer.concat([
        noBody,
        Buffer.from([0x5a | 0x80, 0x80, 0x80, 0x80, 0x10]), // ((11 << 3) | 2) + 2^32 as a varint
        Buffer.from(field(11, 2, (w) => w.bytes(Buffer.alloc(0))).subarray(1)),
      ]),
      "a body field that is no body": Buffer.concat([noBody, field(19, 2, (w) => w.bytes(Buffer.alloc(0)))]),
      "a result's tag twice": resultBody(
        field(2, 2, (w) => w.string("x")),
        field(2, 2, (w) => w.string("y")),
      ),
      "a result's exit status twice": resultBody(
        field(9, 0, (w) => w.int32(1)),
        field(9, 0, (w) => w.int32(2)),
      ),
      "an unknown Result field": resultBody(field(12, 0, (w) => w.uint32(1))),
      "rows beyond 2^53": resultBody(field(3, 0, (w) => w.uint64(2n ** 53n))),
      "a negative exit status": resultBody(field(9, 0, (w) => w.int32(-1))),
      "an exit status beyond int32": resultBody(field(9, 0, (w) => w.uint32(0x80000000))),
      "a command beyond uint32": resultBody(field(1, 0, (w) => w.uint64(2n ** 32n))),
      "an unknown Row field": resultBody(field(8, 2, (w) => w.bytes(field(2, 0, (x) => x.uint32(1))))),
      "a Value's text twice": resultBody(
        row(Buffer.concat([field(1, 2, (w) => w.string("a")), field(1, 2, (w) => w.string("b"))])),
      ),
      "invalid UTF-8 in a sample": resultBody(row(field(1, 2, (w) => w.bytes(Buffer.from([0xff]))))),
      "an error's code twice": resultBody(
        field(11, 2, (w) =>
          w.bytes(Buffer.concat([field(1, 2, (x) => x.string("a")), field(1, 2, (x) => x.string("b"))])),
        ),
      ),
      "an unknown RecordedError field": resultBody(field(11, 2, (w) => w.bytes(field(3, 0, (x) => x.uint32(1))))),
      "a truncated row": resultBody(Buffer.from([(8 << 3) | 2, 5, 0x0a])),
      "a negative stream": Buffer.concat([noBody, field(13, 2, (w) => w.bytes(field(2, 0, (x) => x.int32(-2))))]),
      "an output's data twice": Buffer.concat([
        noBody,
        field(13, 2, (w) =>
          w.bytes(Buffer.concat([field(3, 2, (x) => x.string("a")), field(3, 2, (x) => x.string("b"))])),
        ),
      ]),
    });
    for (const [what, bytes] of Object.entries(cases)) assert.equal(fastRow(bytes), undefined, what);
  });
});
