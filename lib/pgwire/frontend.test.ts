import assert from "node:assert/strict";
import { serialize } from "pg-protocol";
import {
  FrontendReader,
  readStartupPacket,
  serializeCancelRequest,
  serializeDescribe,
  serializeQuery,
  serializeStartup,
  serializeSync,
  serializeTerminate,
  type FrontendMessage,
} from "./frontend.js";
import { Xorshift, byteSplits, cstr, drain, frame, int16, int32, packet, randomSplits } from "./testing.js";

/** For assert.throws: a PgProtocolError with this SQLSTATE and message. */
function pgError(sqlstate: string, message: RegExp): object {
  return { name: "PgProtocolError", sqlstate, message };
}

const bytes = (text: string): Buffer => Buffer.from(text, "utf8");

const CASES: { name: string; wire: Buffer; msg: FrontendMessage }[] = [
  { name: "Query", wire: serialize.query("select 'ünï' -- ☃"), msg: { type: "query", text: "select 'ünï' -- ☃" } },
  {
    name: "Parse with unsigned OIDs",
    wire: serialize.parse({ name: "s1", text: "select $1, $2", types: [23, 3_000_000_000] }),
    msg: { type: "parse", name: "s1", text: "select $1, $2", paramTypes: [23, 3_000_000_000] },
  },
  {
    name: "Bind with text, NULL, binary and empty values",
    wire: serialize.bind({
      portal: "p1",
      statement: "s1",
      values: ["abc", null, Buffer.from([0, 1, 2]), ""],
      binary: true,
    }),
    msg: {
      type: "bind",
      portal: "p1",
      statement: "s1",
      paramFormats: [0, 0, 1, 0],
      params: [bytes("abc"), null, Buffer.from([0, 1, 2]), Buffer.alloc(0)],
      resultFormats: [1],
    },
  },
  {
    name: "Bind with defaults",
    wire: serialize.bind(),
    msg: { type: "bind", portal: "", statement: "", paramFormats: [], params: [], resultFormats: [0] },
  },
  {
    name: "Describe statement",
    wire: serialize.describe({ type: "S", name: "s1" }),
    msg: { type: "describe", target: "S", name: "s1" },
  },
  {
    name: "Describe portal",
    wire: serialize.describe({ type: "P" }),
    msg: { type: "describe", target: "P", name: "" },
  },
  {
    name: "Execute with a row limit",
    wire: serialize.execute({ portal: "p1", rows: 100 }),
    msg: { type: "execute", portal: "p1", maxRows: 100 },
  },
  { name: "Execute", wire: serialize.execute(), msg: { type: "execute", portal: "", maxRows: 0 } },
  { name: "Sync", wire: serialize.sync(), msg: { type: "sync" } },
  { name: "Flush", wire: serialize.flush(), msg: { type: "flush" } },
  { name: "Close", wire: serialize.close({ type: "P", name: "p1" }), msg: { type: "close", target: "P", name: "p1" } },
  {
    name: "CopyData",
    wire: serialize.copyData(Buffer.from("1\tx\n")),
    msg: { type: "copyData", data: Buffer.from("1\tx\n") },
  },
  { name: "CopyDone", wire: serialize.copyDone(), msg: { type: "copyDone" } },
  {
    name: "CopyFail",
    wire: serialize.copyFail("client gave up"),
    msg: { type: "copyFail", message: "client gave up" },
  },
  { name: "Terminate", wire: serialize.end(), msg: { type: "terminate" } },
  { name: "PasswordMessage", wire: serialize.password("hunter2"), msg: { type: "password", data: cstr("hunter2") } },
  {
    name: "SASLInitialResponse",
    wire: serialize.sendSASLInitialResponseMessage("SCRAM-SHA-256", "n,,n=*,r=abc"),
    msg: {
      type: "password",
      data: Buffer.concat([cstr("SCRAM-SHA-256"), int32(12), bytes("n,,n=*,r=abc")]),
    },
  },
  {
    name: "SASLResponse",
    wire: serialize.sendSCRAMClientFinalMessage("c=biws,r=abc,p=xyz"),
    msg: { type: "password", data: bytes("c=biws,r=abc,p=xyz") },
  },
  {
    name: "FunctionCall",
    wire: frame("F", [int32(1598), int16(0), int16(0), int16(0)]),
    msg: { type: "functionCall", body: Buffer.concat([int32(1598), int16(0), int16(0), int16(0)]) },
  },
];

describe("pgwire frontend reader", () => {
  for (const { name, wire, msg } of CASES) {
    it(`reads ${name} whole, byte by byte and in random splits`, () => {
      const whole = drain(new FrontendReader(), [wire]);
      assert.equal(whole.length, 1);
      assert.deepEqual(whole[0]!.msg, msg);
      // A message inside one chunk comes back as a view of it, not a copy.
      assert.equal(whole[0]!.raw.buffer, wire.buffer);
      assert.equal(whole[0]!.raw.byteOffset, wire.byteOffset);
      assert.equal(whole[0]!.raw.length, wire.length);

      const splits = [byteSplits(wire), ...[1, 2, 3, 4, 5].map((seed) => randomSplits(wire, new Xorshift(seed), 7))];
      for (const chunks of splits) {
        const reader = new FrontendReader();
        const out = drain(reader, chunks);
        assert.equal(out.length, 1);
        assert.deepEqual(out[0]!.msg, msg);
        assert.ok(out[0]!.raw.equals(wire));
        assert.equal(reader.buffered, 0);
      }
    });
  }

  it("reads a stream of every message in random splits, raw bytes adding up to the input", () => {
    const stream = Buffer.concat(CASES.map((c) => c.wire));
    for (let seed = 1; seed <= 20; seed++) {
      const out = drain(new FrontendReader(), randomSplits(stream, new Xorshift(seed), 64));
      assert.deepEqual(
        out.map((o) => o.msg),
        CASES.map((c) => c.msg),
      );
      assert.ok(Buffer.concat(out.map((o) => o.raw)).equals(stream));
    }
  });

  it("waits for the rest of a message and counts what it holds", () => {
    const wire = serialize.query("select 1");
    const reader = new FrontendReader();
    reader.push(wire.subarray(0, 7));
    assert.equal(reader.next(), undefined);
    assert.equal(reader.buffered, 7);
    reader.push(wire.subarray(7));
    assert.deepEqual(reader.next()?.msg, { type: "query", text: "select 1" });
    assert.equal(reader.buffered, 0);
    assert.equal(reader.next(), undefined);
  });

  it("serializes what pg-protocol serializes", () => {
    assert.ok(serializeQuery("select 'ü'").equals(serialize.query("select 'ü'")));
    assert.ok(serializeSync().equals(serialize.sync()));
    assert.ok(serializeTerminate().equals(serialize.end()));
    assert.ok(serializeDescribe("P", "p1").equals(serialize.describe({ type: "P", name: "p1" })));
    assert.ok(serializeDescribe("S", "").equals(serialize.describe({ type: "S" })));
    assert.throws(() => serializeQuery("a\0b"), TypeError);
  });

  describe("message size limits", () => {
    it("refuses a small message type over 10000 bytes as soon as its header arrives", () => {
      const reader = new FrontendReader();
      reader.push(frame("S", [], 10001));
      assert.throws(() => reader.next(), pgError("54000", /Sync message length 10001 exceeds the limit of 10000/));
    });

    it("refuses every small message type over 10000 bytes", () => {
      for (const type of "SHXDCEcf") {
        const reader = new FrontendReader();
        reader.push(frame(type, [], 10001));
        assert.throws(() => reader.next(), pgError("54000", /exceeds the limit of 10000/), type);
      }
    });

    it("waits for a small message of exactly 10000 bytes", () => {
      const reader = new FrontendReader();
      reader.push(frame("D", [], 10000));
      assert.equal(reader.next(), undefined);
    });

    it("refuses a large message type over 1 GiB - 1 and waits for one just under", () => {
      const over = new FrontendReader();
      over.push(frame("Q", [], 0x40000000));
      assert.throws(() => over.next(), pgError("54000", /Query message length 1073741824 exceeds/));
      const under = new FrontendReader();
      under.push(frame("Q", [], 0x3fffffff));
      assert.equal(under.next(), undefined);
    });

    it("refuses a password message over 65535 bytes, PostgreSQL's limit before authentication", () => {
      const reader = new FrontendReader();
      reader.push(frame("p", [], 65536));
      assert.throws(() => reader.next(), pgError("54000", /Password message length 65536/));
    });

    it("refuses a length below 4, including negative ones", () => {
      for (const length of [3, 0, -1, -0x80000000]) {
        const reader = new FrontendReader();
        reader.push(frame("S", [], length));
        assert.throws(() => reader.next(), pgError("08P01", /Sync message has invalid length/));
      }
    });

    it("refuses an unknown type byte, including backend-only ones", () => {
      for (const type of ["Z", "T", "\0", "\xff"]) {
        const reader = new FrontendReader();
        reader.push(frame(type, []));
        const code = type.charCodeAt(0);
        assert.throws(() => reader.next(), pgError("08P01", new RegExp(`^invalid frontend message type ${code}$`)));
      }
    });

    it("refuses an unknown type byte before its length arrives", () => {
      const reader = new FrontendReader();
      reader.push(Buffer.from("G"));
      assert.throws(() => reader.next(), pgError("08P01", /^invalid frontend message type 71$/));
    });

    it("stays failed after an error, even when more bytes arrive", () => {
      const reader = new FrontendReader();
      reader.push(frame("Z", []));
      assert.throws(() => reader.next(), pgError("08P01", /invalid frontend message type 90/));
      reader.push(serialize.sync());
      assert.throws(() => reader.next(), pgError("08P01", /invalid frontend message type 90/));
    });
  });

  describe("malformed bodies", () => {
    const bad: [string, Buffer, RegExp][] = [
      ["Query without NUL", frame("Q", [bytes("select 1")]), /^Query: query string is not NUL-terminated$/],
      ["Query with trailing bytes", frame("Q", [cstr("select 1"), bytes("x")]), /^Query: 1 unexpected bytes/],
      ["Parse cut in its types", frame("P", [cstr(""), cstr("q"), int16(2), int32(23)]), /^Parse: parameter type/],
      [
        "Bind with a negative length",
        frame("B", [cstr(""), cstr(""), int16(0), int16(1), int32(-2), int16(0)]),
        /^Bind: parameter 1 has length -2/,
      ],
      [
        "Bind with a value overrunning the body",
        frame("B", [cstr(""), cstr(""), int16(0), int16(1), int32(100), bytes("abc")]),
        /^Bind: parameter 1 has length 100, 3 bytes left/,
      ],
      [
        "Bind with a count overrunning the body",
        frame("B", [cstr(""), cstr(""), int16(0), int16(65535)]),
        /^Bind: parameter length needs 4 bytes/,
      ],
      [
        "Bind with 2 format codes for 3 parameters",
        frame("B", [cstr(""), cstr(""), int16(2), int16(0), int16(1), int16(3)]),
        /^Bind: 2 parameter format codes for 3 parameters$/,
      ],
      [
        "Bind without result formats",
        frame("B", [cstr(""), cstr(""), int16(0), int16(0)]),
        /^Bind: result format count needs 2 bytes/,
      ],
      ["Describe of an unknown target", frame("D", [bytes("X"), cstr("")]), /^Describe: invalid subtype 88/],
      ["Close without a name", frame("C", [bytes("S")]), /^Close: name is not NUL-terminated/],
      ["Execute without a row limit", frame("E", [cstr("")]), /^Execute: row limit needs 4 bytes at offset 1, 0 left/],
      ["Sync with a body", frame("S", [bytes("x")]), /^Sync: unexpected 1-byte body/],
      ["CopyFail with trailing bytes", frame("f", [cstr("no"), cstr("")]), /^CopyFail: 1 unexpected bytes/],
    ];
    for (const [name, wire, message] of bad) {
      it(`refuses ${name}`, () => {
        const reader = new FrontendReader();
        reader.push(wire);
        assert.throws(() => reader.next(), pgError("08P01", message));
      });
    }

    it("accepts a Bind whose one format code applies to every parameter", () => {
      const reader = new FrontendReader();
      reader.push(frame("B", [cstr(""), cstr(""), int16(1), int16(1), int16(2), int32(-1), int32(-1), int16(0)]));
      const msg = reader.next()?.msg;
      assert.deepEqual(msg, {
        type: "bind",
        portal: "",
        statement: "",
        paramFormats: [1],
        params: [null, null],
        resultFormats: [],
      });
    });

    it("keeps a negative Execute row limit as sent (PostgreSQL reads it as no limit)", () => {
      const reader = new FrontendReader();
      reader.push(frame("E", [cstr("p"), int32(-5)]));
      assert.deepEqual(reader.next()?.msg, { type: "execute", portal: "p", maxRows: -5 });
    });
  });
});

describe("pgwire startup packets", () => {
  it("reads pg-protocol's StartupMessage, whole and never early", () => {
    const wire = serialize.startup({ user: "alice", database: "db1", application_name: "ü" });
    for (let n = 0; n < wire.length; n++) assert.equal(readStartupPacket(wire.subarray(0, n)), undefined);
    const read = readStartupPacket(wire);
    assert.equal(read?.length, wire.length);
    assert.ok(read?.packet.type === "startup");
    assert.equal(read.packet.major, 3);
    assert.equal(read.packet.minor, 0);
    assert.deepEqual(
      { ...read.packet.params },
      { user: "alice", database: "db1", application_name: "ü", client_encoding: "UTF8" },
    );
  });

  it("round-trips our StartupMessage for protocol 3.2, last repeated name winning", () => {
    const read = readStartupPacket(serializeStartup({ user: "bob", options: "-c x=1" }, 2));
    assert.deepEqual(read?.packet.type === "startup" && read.packet, {
      type: "startup",
      major: 3,
      minor: 2,
      params: Object.assign(Object.create(null), { user: "bob", options: "-c x=1" }),
    });
    const repeated = packet([int16(3), int16(0), cstr("user"), cstr("a"), cstr("user"), cstr("b"), Buffer.alloc(1)]);
    const again = readStartupPacket(repeated);
    assert.equal(again?.packet.type === "startup" && again.packet.params.user, "b");
  });

  it("keeps parameters named like Object.prototype members as plain parameters", () => {
    const wire = packet([int16(3), int16(0), cstr("__proto__"), cstr("x"), cstr("constructor"), cstr("y"), cstr("")]);
    const read = readStartupPacket(wire);
    assert.ok(read?.packet.type === "startup");
    assert.deepEqual(Object.entries(read.packet.params), [
      ["__proto__", "x"],
      ["constructor", "y"],
    ]);
    assert.equal(Object.getPrototypeOf(read.packet.params), null);
  });

  it("returns a newer minor version as sent, for the caller to negotiate", () => {
    const read = readStartupPacket(packet([int16(3), int16(9), cstr("user"), cstr("a"), cstr("")]));
    assert.equal(read?.packet.type === "startup" && read.packet.minor, 9);
  });

  it("reads SSLRequest and GSSENCRequest, reporting their length so trailing bytes can be refused", () => {
    const ssl = Buffer.concat([serialize.requestSsl(), bytes("stuffed")]);
    assert.deepEqual(readStartupPacket(ssl), { packet: { type: "ssl" }, length: 8 });
    assert.deepEqual(readStartupPacket(packet([int16(1234), int16(5680)])), { packet: { type: "gssenc" }, length: 8 });
  });

  it("reads a CancelRequest with a 4-byte key (3.0) and a 32-byte key (3.2)", () => {
    const short = readStartupPacket(serialize.cancel(4242, -559038737));
    assert.deepEqual(short, { packet: { type: "cancel", pid: 4242, secret: int32(-559038737) }, length: 16 });
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const long = readStartupPacket(serializeCancelRequest(77, key));
    assert.deepEqual(long, { packet: { type: "cancel", pid: 77, secret: key }, length: 44 });
    assert.throws(() => serializeCancelRequest(1, Buffer.alloc(3)), RangeError);
    assert.throws(() => serializeCancelRequest(1, Buffer.alloc(257)), RangeError);
  });

  it("accepts PostgreSQL's length range: 8 to 10004 bytes (10000 after the length word)", () => {
    const filler = (n: number): Buffer => cstr("x".repeat(n));
    const longest = packet([int16(3), int16(0), cstr("a"), filler(10000 - 4 - 2 - 1 - 1), cstr("")]);
    assert.equal(longest.length, 10004);
    assert.equal(readStartupPacket(longest)?.length, 10004);
    assert.throws(
      () => readStartupPacket(packet([], 10005)),
      pgError("54000", /10005 bytes exceeds the limit of 10004/),
    );
    assert.throws(() => readStartupPacket(packet([], 7)), pgError("08P01", /invalid length of startup packet: 7/));
    assert.throws(() => readStartupPacket(packet([], -1)), pgError("08P01", /invalid length of startup packet: -1/));
  });

  it("refuses protocol versions other than 3.x and unknown request codes", () => {
    assert.throws(
      () => readStartupPacket(packet([int16(2), int16(0), cstr("")])),
      pgError("0A000", /^unsupported frontend protocol 2\.0: server supports 3\.0 to 3\.2$/),
    );
    assert.throws(
      () => readStartupPacket(packet([int16(1234), int16(9999)])),
      pgError("0A000", /unsupported frontend protocol 1234\.9999/),
    );
  });

  it("refuses malformed request packets and parameter lists", () => {
    const bad: [Buffer, RegExp][] = [
      [packet([int16(1234), int16(5679), int32(0)]), /SSLRequest of 12 bytes, expected 8/],
      [packet([int16(1234), int16(5678), int32(1)]), /CancelRequest key of 0 bytes/],
      [packet([int16(1234), int16(5678), int32(1), Buffer.alloc(257)]), /CancelRequest key of 257 bytes/],
      [packet([int16(3), int16(0)]), /missing the terminating NUL/],
      [packet([int16(3), int16(0), cstr("user"), cstr("a")]), /missing the terminating NUL/],
      [packet([int16(3), int16(0), cstr("user"), cstr("")]), /missing the terminating NUL/],
      [packet([int16(3), int16(0), cstr("user")]), /parameter "user" has no NUL-terminated value/],
      [packet([int16(3), int16(0), bytes("user")]), /parameter name at offset 8 is not NUL-terminated/],
      [packet([int16(3), int16(0), cstr(""), bytes("xy")]), /2 bytes after the terminating NUL/],
    ];
    for (const [wire, message] of bad) assert.throws(() => readStartupPacket(wire), pgError("08P01", message));
  });
});
