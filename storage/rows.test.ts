import assert from "node:assert/strict";
import { bodyToJson, eventHash } from "../lib/recording/chain.js";
import { generateKey } from "../lib/keys.js";
import { splitStatements } from "./migrate.js";
import {
  clickhouseTime,
  EVENT_ROW_COLUMNS,
  eventRow,
  eventToRow,
  isoTime,
  rowMatchesBody,
  rowToEvent,
  type StoredEventRow,
} from "./rows.js";
import { decodeCursor, encodeCursor, parseTime } from "./search.js";
import { sessionRows } from "./session-rows.js";
import { recordSession } from "./testing/sessions.js";

const key = generateKey();
const events = recordSession(
  {
    id: "s-rows",
    user: "alice",
    segment: "eu",
    start: "2026-03-10T10:00:00.000Z",
    commands: ["SELECT * FROM invoices", { text: "DROP TABLE invoices", decision: "deny", error: "refused" }],
  },
  key.privateKey,
);

/** A row as ClickHouse reads it back: with the text the table derives from the body. */
function stored(row: ReturnType<typeof eventToRow>): StoredEventRow {
  const body = JSON.parse(row.body) as { command?: { text?: string } };
  return { ...row, text: body.command?.text ?? "" };
}

/** One RowBinary row of EVENT_ROW_COLUMNS, read back (the test's own reader, after the format's spec). */
function readRowBinary(row: Buffer): Record<string, unknown> {
  let pos = 0;
  const varint = () => {
    let n = 0;
    for (let shift = 0; ; shift += 7) {
      const b = row[pos++]!;
      n += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return n;
    }
  };
  const string = () => {
    const length = varint();
    pos += length;
    return row.toString("utf8", pos - length, pos);
  };
  const bytes = (n: number) => row.toString("hex", pos, (pos += n));
  const u32 = () => row.readUInt32LE((pos += 4) - 4);
  const values = {
    session_id: string(),
    seq: row.readBigUInt64LE((pos += 8) - 8),
    time: row.readBigInt64LE((pos += 8) - 8),
    version: u32(),
    type: string(),
    command: u32(),
    decision: string(),
    rule: string(),
    kinds: Array.from({ length: varint() }, string),
    body: string(),
    hash: bytes(32),
    signature: bytes(varint()),
  };
  assert.equal(pos, row.length, "the row ends with its last column");
  return values;
}

describe("storage rows", () => {
  it("rebuild every event exactly: the same hash from the stored columns", () => {
    let prev: Buffer = Buffer.alloc(32);
    for (const ev of events) {
      const back = rowToEvent(eventToRow(ev));
      assert.equal(back.prevHash.length, 0);
      assert.deepEqual(eventHash(back, prev), ev.hash);
      assert.deepEqual(back.hash, ev.hash);
      assert.deepEqual(back.signature, ev.signature);
      assert.equal(bodyToJson(back.body!), bodyToJson(ev.body!));
      prev = ev.hash;
    }
  });

  it("an insert row holds the event's values in EVENT_ROW_COLUMNS order, as RowBinary", () => {
    for (const ev of events) {
      const row = eventToRow(ev);
      const values = readRowBinary(eventRow(ev));
      assert.deepEqual(Object.keys(values), [...EVENT_ROW_COLUMNS]);
      assert.deepEqual(values, {
        session_id: row.session_id,
        seq: BigInt(row.seq),
        time: BigInt(row.time_us),
        version: row.version,
        type: row.type,
        command: row.command,
        decision: row.decision,
        rule: row.rule,
        kinds: row.kinds,
        body: row.body,
        hash: row.hash_hex,
        signature: row.signature_hex,
      });
    }
  });

  it("refuses an event the table cannot hold", () => {
    assert.throws(() => eventRow({ ...events[1]!, hash: Buffer.alloc(31) }), /hash of 31 bytes, not 32/);
    assert.throws(() => eventRow({ ...events[1]!, body: undefined }), /has no body/);
  });

  it("derive the search columns from the body", () => {
    const row = eventToRow(events[3]!);
    assert.deepEqual(
      { type: row.type, command: row.command, decision: row.decision, rule: row.rule, kinds: row.kinds },
      { type: "command", command: 2, decision: "deny", rule: "deny-rule", kinds: ["drop"] },
    );
    assert.equal(eventToRow(events[4]!).command, 2, "a result carries its command's number");
    assert.equal(eventToRow(events[0]!).type, "session_start");
  });

  it("rowMatchesBody names a derived column that no longer matches the body", () => {
    const row = stored(eventToRow(events[3]!));
    assert.deepEqual(rowMatchesBody(row), { ok: true });
    const altered = rowMatchesBody({ ...row, decision: "allow" });
    assert.equal(altered.ok, false);
    assert.equal(!altered.ok && altered.column, "decision");
    const text = rowMatchesBody({ ...row, text: "SELECT 1" });
    assert.equal(!text.ok && text.column, "text");
    const broken = rowMatchesBody({ ...row, body: "{" });
    assert.equal(!broken.ok && broken.column, "body");
  });

  it("times keep their microseconds both ways", () => {
    const us = 1_773_136_800_123_456n;
    assert.equal(clickhouseTime(us), "2026-03-10 10:00:00.123456");
    assert.equal(isoTime(us), "2026-03-10T10:00:00.123456Z");
    assert.equal(parseTime("2026-03-10T10:00:00.123456Z", "from"), us);
    assert.equal(parseTime(new Date("2026-03-10T10:00:00.123Z"), "from"), us - 456n);
    assert.throws(() => parseTime("yesterday", "from"), /from is not a date/);
  });

  it("cursors decode only to the shape they were made with", () => {
    assert.deepEqual(decodeCursor(encodeCursor(["1", "s", 3]), ["string", "string", "number"]), ["1", "s", 3]);
    assert.throws(() => decodeCursor("garbage", ["string", "string"]), /cursor is not one this search returned/);
    assert.throws(() => decodeCursor(encodeCursor(["1", 2]), ["string", "string"]), /cursor/);
  });
});

describe("session rows", () => {
  it("summarise a batch with values that only ever grow, so repeats change nothing", () => {
    const [row] = sessionRows(events);
    assert.ok(row);
    assert.equal(row.user, "alice");
    assert.equal(row.commands, 2);
    assert.equal(row.denied, 1);
    assert.equal(row.allowed, 1);
    assert.deepEqual(row.error_seqs, [4]);
    assert.equal(row.started_at, "2026-03-10 10:00:00.000000");
    assert.equal(row.ended_at, "2026-03-10 10:00:05.000000");
    assert.equal(row.last_at, "2026-03-10 10:00:05.000000");
    assert.equal(row.last_seq, 5);
    assert.equal(row.params, JSON.stringify({ database: "orders" }));
  });

  it("a batch without session_start leaves who and where empty for max() to fill", () => {
    const [row] = sessionRows(events.slice(3));
    assert.equal(row?.user, "");
    assert.equal(row?.started_at, "2026-03-10 10:00:03.000000");
  });
});

describe("migration files", () => {
  it("split into statements after dropping comment lines, even ones ending with ;", () => {
    assert.deepEqual(splitStatements("-- a comment;\nCREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nSELECT 1;\n"), [
      "CREATE TABLE a (x UInt8)\nENGINE = Memory",
      "SELECT 1",
    ]);
  });
});
