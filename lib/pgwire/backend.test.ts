import assert from "node:assert/strict";
import type { BackendMessage } from "pg-protocol/dist/messages.js";
import { Parser } from "pg-protocol/dist/parser.js";
import {
  B,
  BackendReader,
  dataRowRun,
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  bindComplete,
  closeComplete,
  commandComplete,
  dataRow,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeNotificationResponse,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
  emptyQueryResponse,
  errorResponse,
  negotiateProtocolVersion,
  noData,
  noticeResponse,
  parameterStatus,
  parseComplete,
  portalSuspended,
  readyForQuery,
  rowDescription,
  sslResponse,
  type RowField,
} from "./backend.js";
import { Xorshift, byteSplits, cstr, drain, frame, int16, int32, randomSplits } from "./testing.js";

function pgError(sqlstate: string, message: RegExp): object {
  return { name: "PgProtocolError", sqlstate, message };
}

/** Everything pg-protocol's own parser (what node-postgres clients run) makes of `wire`. */
function parseWithPgProtocol(wire: Buffer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  new Parser().parse(wire, (msg: BackendMessage) => out.push(msg as unknown as Record<string, unknown>));
  return out;
}

function pick(msg: Record<string, unknown> | undefined, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, msg?.[k]]));
}

const FIELDS: RowField[] = [
  { name: "id", tableOid: 16384, column: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 },
  { name: "naïve", tableOid: 3_000_000_000, column: -2, typeOid: 25, typeSize: -1, typeMod: -1, format: 1 },
  { name: "", tableOid: 0, column: 0, typeOid: 1043, typeSize: -1, typeMod: 36, format: 0 },
];

describe("pgwire backend serializers, read back by pg-protocol", () => {
  it("writes an ErrorResponse with code, message, detail, hint and position", () => {
    const wire = errorResponse({
      code: "42501",
      message: "permission denied for table t",
      detail: "policy rule r1",
      hint: "ask for review",
      position: 15,
    });
    const [msg, ...rest] = parseWithPgProtocol(wire);
    assert.equal(rest.length, 0);
    assert.deepEqual(pick(msg, ["name", "severity", "code", "message", "detail", "hint", "position"]), {
      name: "error",
      severity: "ERROR",
      code: "42501",
      message: "permission denied for table t",
      detail: "policy rule r1",
      hint: "ask for review",
      position: "15",
    });
    assert.deepEqual(decodeErrorFields(wire.subarray(5)), {
      S: "ERROR",
      V: "ERROR",
      C: "42501",
      M: "permission denied for table t",
      D: "policy rule r1",
      H: "ask for review",
      P: "15",
    });
  });

  it("writes a FATAL error and a NOTICE, leaving out fields not given", () => {
    const fatal = errorResponse({ severity: "FATAL", code: "28000", message: "no" });
    assert.deepEqual(decodeErrorFields(fatal.subarray(5)), { S: "FATAL", V: "FATAL", C: "28000", M: "no" });
    const [notice] = parseWithPgProtocol(noticeResponse({ code: "01000", message: "careful" }));
    assert.deepEqual(pick(notice, ["name", "severity", "code", "message", "detail"]), {
      name: "notice",
      severity: "NOTICE",
      code: "01000",
      message: "careful",
      detail: undefined,
    });
  });

  it("turns a NUL in error text into U+FFFD instead of letting it start a forged field", () => {
    const wire = errorResponse({ code: "42000", message: "bad\0Dforged", detail: "x\0" });
    assert.deepEqual(decodeErrorFields(wire.subarray(5)), {
      S: "ERROR",
      V: "ERROR",
      C: "42000",
      M: "bad\uFFFDDforged",
      D: "x\uFFFD",
    });
  });

  it("writes the session and extended-query messages", () => {
    const key = int32(-559038737);
    const wire = Buffer.concat([
      authenticationCleartextPassword(),
      authenticationOk(),
      parameterStatus("server_version", "16.4 (vigil)"),
      backendKeyData(4242, key),
      readyForQuery("I"),
      parseComplete(),
      bindComplete(),
      rowDescription(FIELDS),
      dataRow([Buffer.from("1"), null, Buffer.from("ü")]),
      portalSuspended(),
      commandComplete("SELECT 1"),
      emptyQueryResponse(),
      noData(),
      closeComplete(),
      readyForQuery("T"),
    ]);
    const msgs = parseWithPgProtocol(wire);
    assert.deepEqual(
      msgs.map((m) => m.name),
      [
        "authenticationCleartextPassword",
        "authenticationOk",
        "parameterStatus",
        "backendKeyData",
        "readyForQuery",
        "parseComplete",
        "bindComplete",
        "rowDescription",
        "dataRow",
        "portalSuspended",
        "commandComplete",
        "emptyQuery",
        "noData",
        "closeComplete",
        "readyForQuery",
      ],
    );
    assert.deepEqual(pick(msgs[2], ["parameterName", "parameterValue"]), {
      parameterName: "server_version",
      parameterValue: "16.4 (vigil)",
    });
    assert.deepEqual(pick(msgs[3], ["processID", "secretKey"]), { processID: 4242, secretKey: -559038737 });
    assert.equal(msgs[4]?.status, "I");
    const fields = (msgs[7]?.fields as Record<string, unknown>[]).map((f) =>
      pick(f, ["name", "tableID", "columnID", "dataTypeID", "dataTypeSize", "dataTypeModifier", "format"]),
    );
    assert.deepEqual(fields, [
      {
        name: "id",
        tableID: 16384,
        columnID: 1,
        dataTypeID: 23,
        dataTypeSize: 4,
        dataTypeModifier: -1,
        format: "text",
      },
      {
        name: "naïve",
        tableID: 3_000_000_000,
        columnID: -2,
        dataTypeID: 25,
        dataTypeSize: -1,
        dataTypeModifier: -1,
        format: "binary",
      },
      { name: "", tableID: 0, columnID: 0, dataTypeID: 1043, dataTypeSize: -1, dataTypeModifier: 36, format: "text" },
    ]);
    assert.deepEqual(msgs[8]?.fields, ["1", null, "ü"]);
    assert.equal(msgs[10]?.text, "SELECT 1");
    assert.equal(msgs[14]?.status, "T");
  });

  it("writes NegotiateProtocolVersion and the one-byte SSL answers", () => {
    assert.ok(
      negotiateProtocolVersion(2, ["_pq_.a", "_pq_.b"]).equals(
        frame("v", [int32(2), int32(2), cstr("_pq_.a"), cstr("_pq_.b")]),
      ),
    );
    assert.ok(negotiateProtocolVersion(0, []).equals(frame("v", [int32(0), int32(0)])));
    assert.deepEqual([...sslResponse(true), ...sslResponse(false)], [0x53, 0x4e]);
  });

  it("refuses values that cannot be put on the wire", () => {
    assert.throws(() => commandComplete("SELECT\0"), TypeError);
    assert.throws(() => parameterStatus("a\0b", "c"), TypeError);
    assert.throws(() => backendKeyData(1, Buffer.alloc(3)), RangeError);
    assert.throws(() => backendKeyData(1, Buffer.alloc(257)), RangeError);
    assert.throws(() => dataRow(new Array<null>(65536).fill(null)), RangeError);
  });

  it("writes counts above 32767 as unsigned, as clients read them", () => {
    const values = new Array<Buffer | null>(40000).fill(null);
    const wire = dataRow(values);
    assert.equal(wire.readUInt16BE(5), 40000);
    assert.equal(decodeDataRow(wire.subarray(5)).length, 40000);
  });
});

describe("pgwire backend reader and decoders", () => {
  const notification = frame("A", [int32(99), cstr("jobs"), cstr('{"id":1}')]);
  const messages = [
    parameterStatus("TimeZone", "UTC"),
    backendKeyData(7, Buffer.alloc(32, 0xab)),
    readyForQuery("I"),
    rowDescription(FIELDS),
    dataRow([Buffer.from("42"), null, Buffer.alloc(0)]),
    commandComplete("SELECT 1"),
    errorResponse({ code: "57014", message: "canceling statement" }),
    notification,
    readyForQuery("E"),
  ];
  const stream = Buffer.concat(messages);

  it("frames a stream whole, byte by byte and in random splits, raw bytes adding up to the input", () => {
    const splits = [[stream], byteSplits(stream), ...[1, 2, 3].map((s) => randomSplits(stream, new Xorshift(s), 40))];
    for (const chunks of splits) {
      const reader = new BackendReader();
      const out = drain(reader, chunks);
      assert.deepEqual(
        out.map((m) => m.code),
        [
          B.ParameterStatus,
          B.BackendKeyData,
          B.ReadyForQuery,
          B.RowDescription,
          B.DataRow,
          B.CommandComplete,
          B.ErrorResponse,
          B.NotificationResponse,
          B.ReadyForQuery,
        ],
      );
      out.forEach((m, i) => {
        assert.ok(m.raw.equals(messages[i]!));
        assert.ok(m.body.equals(messages[i]!.subarray(5)));
      });
      assert.equal(reader.buffered, 0);
    }
  });

  it("decodes what our serializers wrote", () => {
    const [status, key, ready, description, row, complete, error, notify, failed] = drain(new BackendReader(), [
      stream,
    ]).map((m) => m.body);
    assert.deepEqual(decodeParameterStatus(status!), { name: "TimeZone", value: "UTC" });
    assert.deepEqual(decodeBackendKeyData(key!), { pid: 7, secret: Buffer.alloc(32, 0xab) });
    assert.equal(decodeReadyForQuery(ready!), "I");
    assert.deepEqual(decodeRowDescription(description!), FIELDS);
    assert.deepEqual(decodeDataRow(row!), [Buffer.from("42"), null, Buffer.alloc(0)]);
    assert.equal(decodeCommandComplete(complete!), "SELECT 1");
    assert.equal(decodeErrorFields(error!).C, "57014");
    assert.deepEqual(decodeNotificationResponse(notify!), { pid: 99, channel: "jobs", payload: '{"id":1}' });
    assert.equal(decodeReadyForQuery(failed!), "E");
  });

  it("returns DataRow values as views into the received chunk", () => {
    const wire = dataRow([Buffer.from("abc"), Buffer.from("de")]);
    const [msg] = drain(new BackendReader(), [wire]);
    assert.equal(msg!.raw.buffer, wire.buffer);
    const values = decodeDataRow(msg!.body);
    assert.equal(values[0]!.buffer, wire.buffer);
    assert.equal(values[0]!.byteOffset, wire.byteOffset + 5 + 2 + 4);
    assert.equal(values[1]!.toString(), "de");
  });

  it("hands out the DataRows lying whole in the head chunk as one run, and frames the rest as before", () => {
    const rows = [dataRow([Buffer.from("a")]), dataRow([null, Buffer.from("bc")]), dataRow([])];
    const tail = dataRow([Buffer.from("split across chunks")]);
    const first = Buffer.concat([readyForQuery("I"), ...rows, tail.subarray(0, 9)]);
    const reader = new BackendReader();
    reader.push(first);
    reader.push(tail.subarray(9));
    assert.equal(dataRowRun(reader), undefined, "the next message is not a DataRow");
    assert.equal(reader.next()!.code, B.ReadyForQuery);
    const run = dataRowRun(reader)!;
    assert.equal(run.chunk, first);
    assert.equal(run.count, 3);
    assert.deepEqual(run.chunk.subarray(run.start, run.end), Buffer.concat(rows));
    reader.skip(run.end - run.start);
    assert.equal(dataRowRun(reader), undefined, "a DataRow split across chunks goes through next()");
    assert.deepEqual(reader.next()!.raw, tail);
    assert.equal(reader.buffered, 0);
    assert.equal(dataRowRun(reader), undefined);
    // A bad length is left to next(), which fails the stream.
    const bad = new BackendReader();
    bad.push(Buffer.concat([rows[0]!, frame("D", [], 3)]));
    assert.equal(dataRowRun(bad)!.count, 1);
    bad.skip(rows[0]!.length);
    assert.equal(dataRowRun(bad), undefined);
    assert.throws(() => bad.next(), pgError("08P01", /invalid length 3/));
  });

  it("waits for a long message without a size cap and fails a length below 4 for good", () => {
    const waiting = new BackendReader();
    waiting.push(frame("D", [], 0x7fffffff));
    assert.equal(waiting.next(), undefined);
    const reader = new BackendReader();
    reader.push(frame("D", [], 3));
    assert.throws(() => reader.next(), pgError("08P01", /backend message type 68 has invalid length 3/));
    reader.push(readyForQuery("I"));
    assert.throws(() => reader.next(), pgError("08P01", /invalid length 3/));
  });

  it("reads messages with empty bodies", () => {
    const out = drain(new BackendReader(), [Buffer.concat([parseComplete(), bindComplete(), noData()])]);
    assert.deepEqual(
      out.map((m) => [m.code, m.body.length]),
      [
        [B.ParseComplete, 0],
        [B.BindComplete, 0],
        [B.NoData, 0],
      ],
    );
  });

  describe("malformed bodies", () => {
    const bad: [string, () => unknown, RegExp][] = [
      ["DataRow without a count", () => decodeDataRow(Buffer.from([0])), /^DataRow: column count needs 2 bytes/],
      [
        "DataRow with length -2",
        () => decodeDataRow(Buffer.concat([int16(1), int32(-2)])),
        /^DataRow: column 1 has length -2, 0 bytes left$/,
      ],
      [
        "DataRow overrunning its body",
        () => decodeDataRow(Buffer.concat([int16(1), int32(5), Buffer.from("abc")])),
        /^DataRow: column 1 has length 5, 3 bytes left$/,
      ],
      [
        "DataRow with fewer columns than counted",
        () => decodeDataRow(Buffer.concat([int16(2), int32(-1)])),
        /^DataRow: column 2 length needs 4 bytes at offset 6$/,
      ],
      [
        "DataRow with trailing bytes",
        () => decodeDataRow(Buffer.concat([int16(1), int32(-1), Buffer.from("x")])),
        /^DataRow: 1 unexpected bytes after the last column$/,
      ],
      [
        "RowDescription with format 2",
        () => decodeRowDescription(rowDescriptionWithFormat(2)),
        /^RowDescription: field 1 has format code 2, expected 0 or 1$/,
      ],
      [
        "RowDescription cut short",
        () => decodeRowDescription(rowDescriptionWithFormat(0).subarray(0, 6)),
        /^RowDescription: table OID needs 4 bytes/,
      ],
      ["ReadyForQuery with status X", () => decodeReadyForQuery(Buffer.from("X")), /unknown transaction status "X"/],
      ["ReadyForQuery of 2 bytes", () => decodeReadyForQuery(Buffer.from("II")), /1 unexpected bytes/],
      ["ErrorResponse without terminator", () => decodeErrorFields(Buffer.from("Mx")), /not NUL-terminated/],
      ["ErrorResponse without final NUL", () => decodeErrorFields(cstr("Mx")), /missing the terminating NUL/],
      ["ErrorResponse with trailing bytes", () => decodeErrorFields(Buffer.from("\0x")), /1 unexpected bytes/],
      ["BackendKeyData with a 3-byte key", () => decodeBackendKeyData(Buffer.alloc(7)), /cancel key of 3 bytes/],
      ["ParameterStatus without value", () => decodeParameterStatus(cstr("a")), /parameter value is not NUL/],
      ["CommandComplete with trailing bytes", () => decodeCommandComplete(Buffer.from("A\0B")), /1 unexpected/],
      ["NotificationResponse cut short", () => decodeNotificationResponse(int32(1)), /channel is not NUL/],
    ];
    for (const [name, decode, message] of bad) {
      it(`refuses ${name}`, () => assert.throws(decode, pgError("08P01", message)));
    }
  });
});

function rowDescriptionWithFormat(format: number): Buffer {
  return Buffer.concat([int16(1), cstr("a"), int32(0), int16(0), int32(23), int16(4), int32(-1), int16(format)]);
}
