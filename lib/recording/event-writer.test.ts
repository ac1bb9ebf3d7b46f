import assert from "node:assert/strict";
import { Command, RecordedError, RecordingEvent, Result, Row, Value } from "../../proto/gen/vigil/v1/recording.js";
import type { EventBody } from "./chain.js";
import { encodeEventAfter } from "./event-writer.js";

const PREFIX = Buffer.alloc(32, 0xab);

/** What the generated encoder writes after the same prefix. */
function generated(event: RecordingEvent): Buffer {
  return Buffer.concat([PREFIX, RecordingEvent.encode(event).finish()]);
}

function event(body: EventBody, over: Partial<RecordingEvent> = {}): RecordingEvent {
  return {
    version: 1,
    sessionId: "0193c5a2-7f1e-7cc1-9a4b-1234567890ab",
    seq: 42n,
    timeUs: 1_763_800_000_123_456n,
    prevHash: Buffer.alloc(32, 7),
    hash: Buffer.alloc(0),
    signature: Buffer.alloc(0),
    body,
    ...over,
  };
}

const command = (over: Partial<Command> = {}): EventBody => ({
  $case: "command",
  value: { ...Command.create(), command: 3, text: "SELECT 1", source: "sql", kinds: ["select"], decision: 1, ...over },
});
const result = (over: Partial<Result> = {}): EventBody => ({
  $case: "result",
  value: { ...Result.create(), command: 3, tag: "SELECT 1", rows: 1n, durationUs: 250n, ...over },
});

/** Strings around the one-byte length boundary, multi-byte, astral and lone surrogates. */
const STRINGS = [
  "",
  "a",
  "x".repeat(42),
  "x".repeat(43),
  "x".repeat(127),
  "x".repeat(128),
  "é".repeat(42),
  "é".repeat(64),
  "€".repeat(42),
  "€".repeat(43),
  "😀".repeat(21),
  "😀".repeat(40),
  "lone \ud800 surrogate",
  "\udfff".repeat(42),
  "y".repeat(20_000),
  "ü".repeat(70_000),
];

function same(e: RecordingEvent): void {
  const mine = encodeEventAfter(PREFIX, e);
  assert.ok(mine, `hand path declined ${JSON.stringify(RecordingEvent.toJSON(e)).slice(0, 200)}`);
  assert.ok(Buffer.from(mine).equals(generated(e)), `bytes differ for ${e.body?.$case}`);
}

describe("recording event writer", () => {
  it("writes command events byte for byte as the generated encoder does", () => {
    same(event(command()));
    same(event(command({ command: 0, text: "", source: "", kinds: [], decision: 0 })));
    for (const s of STRINGS) {
      same(
        event(
          command({
            text: s,
            kinds: [s, "select"],
            tablesRead: [s, "public.t"],
            tablesWritten: [s],
            params: [{ text: s }, {}, { text: "" }],
            rule: s,
            reason: s,
          }),
        ),
      );
    }
    same(
      event(
        command({
          decision: 3,
          command: 0xffffffff,
          params: Array.from({ length: 300 }, (_, i) => ({ text: `${i}` })),
        }),
      ),
    );
  });

  it("writes result events byte for byte as the generated encoder does", () => {
    same(event(result()));
    same(event(result({ command: 0, tag: "", rows: 0n, durationUs: 0n })));
    for (const s of STRINGS) {
      same(
        event(
          result({
            tag: s,
            digest: s,
            columns: [s, "c2"],
            sample: [{ values: [{ text: s }, {}, { text: "" }] }, { values: [] }],
            exitSignal: s,
            error: { code: s, message: s },
          }),
        ),
      );
    }
    same(event(result({ rows: 2n ** 53n - 1n, bytes: 127n, durationUs: 128n, exitStatus: 0 })));
    same(event(result({ exitStatus: 2 ** 31 - 1, error: { code: "", message: "" } })));
    const wide = Array.from({ length: 40 }, (_, i) => ({ text: "v".repeat(i * 30) }));
    same(event(result({ sample: Array.from({ length: 5 }, () => ({ values: wide })) })));
  });

  it("writes the event's own fields as the generated encoder does, empty or not", () => {
    same(event(command(), { version: 0, sessionId: "", seq: 0n, timeUs: 0n, prevHash: Buffer.alloc(0) }));
    same(event(result(), { seq: 127n, timeUs: 128n, hash: Buffer.alloc(32, 1), signature: Buffer.alloc(64, 2) }));
    same(event(result(), { seq: 2n ** 53n - 1n, sessionId: STRINGS.at(-1)! }));
  });

  it("leaves other bodies and values out of its range to the generated encoder", () => {
    assert.equal(encodeEventAfter(PREFIX, event({ $case: "error", value: { code: "x", message: "y" } })), undefined);
    assert.equal(encodeEventAfter(PREFIX, event(result({ exitStatus: -1 }))), undefined);
    assert.equal(encodeEventAfter(PREFIX, event(result({ rows: 2n ** 53n }))), undefined);
    assert.equal(encodeEventAfter(PREFIX, event(command(), { timeUs: -5n })), undefined);
    assert.equal(encodeEventAfter(PREFIX, event(command({ decision: -1 }))), undefined);
    // A later event on the hand path is not disturbed by the one that fell back.
    same(event(result()));
  });

  it("knows every field of the messages it writes (a new field must be written here too)", () => {
    const fields = (m: object) => Object.keys(m).sort();
    assert.deepEqual(fields(RecordingEvent.create()), [
      "body",
      "hash",
      "prevHash",
      "seq",
      "sessionId",
      "signature",
      "timeUs",
      "version",
    ]);
    assert.deepEqual(fields(Command.create()), [
      "command",
      "decision",
      "kinds",
      "params",
      "reason",
      "rule",
      "source",
      "tablesRead",
      "tablesWritten",
      "text",
    ]);
    assert.deepEqual(fields(Result.create()), [
      "bytes",
      "columns",
      "command",
      "digest",
      "durationUs",
      "error",
      "exitSignal",
      "exitStatus",
      "rows",
      "sample",
      "tag",
    ]);
    assert.deepEqual(fields(Value.create()), ["text"]);
    assert.deepEqual(fields(Row.create()), ["values"]);
    assert.deepEqual(fields(RecordedError.create()), ["code", "message"]);
  });
});
