import assert from "node:assert/strict";
import { serialize } from "pg-protocol";
import {
  B,
  BackendReader,
  backendKeyData,
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
  errorResponse,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  rowDescription,
} from "./backend.js";
import { PgProtocolError } from "./errors.js";
import { FrontendReader, readStartupPacket, serializeCancelRequest, serializeStartup } from "./frontend.js";
import { Xorshift, cstr, frame, int32, randomSplits } from "./testing.js";

// Seeded, so a failure names the case seed that reproduces it. Every case must end in messages
// or a PgProtocolError: any other exception, a reader that stops consuming, or bytes that go
// missing between input and output fails the test.

const FRONTEND_CORPUS = [
  serialize.query("select 1"),
  serialize.parse({ name: "s", text: "select $1", types: [23] }),
  serialize.bind({ portal: "p", statement: "s", values: ["a", null, Buffer.from([1, 2])], binary: true }),
  serialize.describe({ type: "S", name: "s" }),
  serialize.execute({ portal: "p", rows: 5 }),
  serialize.sync(),
  serialize.flush(),
  serialize.close({ type: "P", name: "p" }),
  serialize.copyData(Buffer.from("1\t2\n")),
  serialize.copyDone(),
  serialize.copyFail("x"),
  serialize.end(),
  serialize.password("pw"),
  serialize.sendSASLInitialResponseMessage("SCRAM-SHA-256", "n,,n=*,r=x"),
  frame("F", [int32(1), Buffer.alloc(6)]),
];

const BACKEND_CORPUS = [
  rowDescription([{ name: "a", tableOid: 1, column: 1, typeOid: 23, typeSize: 4, typeMod: -1, format: 0 }]),
  dataRow([Buffer.from("1"), null, Buffer.alloc(0)]),
  commandComplete("SELECT 1"),
  readyForQuery("T"),
  errorResponse({ code: "XX000", message: "m", detail: "d", hint: "h", position: 3 }),
  noticeResponse({ code: "01000", message: "n" }),
  backendKeyData(1, Buffer.alloc(4, 1)),
  parameterStatus("a", "b"),
  frame("A", [int32(5), cstr("ch"), cstr("payload")]),
];

const STARTUP_CORPUS = [
  serialize.startup({ user: "u", database: "d" }),
  serializeStartup({ user: "u" }, 2),
  serialize.requestSsl(),
  serialize.cancel(1, 2),
  serializeCancelRequest(1, Buffer.alloc(32, 7)),
];

/** Lengths that stress the framers: tiny, at the limits, huge, negative. */
const NASTY_LENGTHS = [0, 3, 4, 5, 9999, 10000, 10001, 65535, 65536, 0x3fffffff, 0x40000000, 0x7fffffff, -1, -4];

function mutate(input: Buffer, rng: Xorshift, lengthAt: number): Buffer {
  const buf = Buffer.from(input);
  switch (rng.below(6)) {
    case 0: {
      for (let n = 1 + rng.below(4); n > 0; n--) buf[rng.below(buf.length)]! ^= 1 << rng.below(8);
      return buf;
    }
    case 1:
      return buf.subarray(0, rng.below(buf.length));
    case 2: {
      if (buf.length >= lengthAt + 4) {
        const choice = rng.below(3);
        const value =
          choice === 0
            ? rng.pick(NASTY_LENGTHS)
            : choice === 1
              ? rng.u32() | 0
              : buf.readInt32BE(lengthAt) + rng.below(9) - 4;
        buf.writeInt32BE(value | 0, lengthAt);
      }
      return buf;
    }
    case 3: {
      const at = rng.below(buf.length + 1);
      return Buffer.concat([buf.subarray(0, at), rng.bytes(1 + rng.below(8)), buf.subarray(at)]);
    }
    case 4: {
      const at = rng.below(buf.length);
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + rng.below(8))]);
    }
    default:
      return rng.bytes(rng.below(64));
  }
}

/** 1 to 6 messages, some mutated, cut into random chunks (sometimes one chunk). */
function randomStream(corpus: Buffer[], rng: Xorshift): Buffer[] {
  const parts: Buffer[] = [];
  for (let n = 1 + rng.below(6); n > 0; n--) {
    const msg = rng.pick(corpus);
    parts.push(rng.below(3) === 0 ? msg : mutate(msg, rng, 1));
  }
  const stream = Buffer.concat(parts);
  return rng.below(4) === 0 ? [stream] : randomSplits(stream, rng, 1 + rng.below(32));
}

interface Framer<T> {
  push(chunk: Buffer): void;
  next(): T | undefined;
  readonly buffered: number;
}

/**
 * Feed `chunks`, draining after each. Returns the messages, or the PgProtocolError that ended
 * the stream (after checking the reader repeats it).
 */
function feed<T extends { raw: Buffer }>(reader: Framer<T>, chunks: Buffer[], onMessage: (m: T) => void): void {
  let pushed = 0;
  let taken = 0;
  let messages = 0;
  try {
    for (const chunk of chunks) {
      reader.push(chunk);
      pushed += chunk.length;
      for (let m = reader.next(); m !== undefined; m = reader.next()) {
        // Every message is at least 5 bytes, so this bounds a reader that stops consuming.
        assert.ok(++messages <= pushed / 5, "more messages than bytes allow");
        taken += m.raw.length;
        onMessage(m);
      }
    }
  } catch (error) {
    if (!(error instanceof PgProtocolError)) throw error;
    assert.throws(
      () => reader.next(),
      (again) => again === error,
    );
    return;
  }
  assert.equal(taken + reader.buffered, pushed, "bytes lost between input and output");
}

function onlyProtocolErrors(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof PgProtocolError)) throw error;
    assert.match(error.sqlstate, /^(08P01|54000|0A000)$/);
  }
}

/** Run `cases` seeded cases, naming the failing seed. */
function cases(count: number, base: number, run: (rng: Xorshift) => void): void {
  for (let i = 0; i < count; i++) {
    const seed = base + i;
    try {
      run(new Xorshift(seed));
    } catch (error) {
      throw new Error(`fuzz case with seed ${seed} failed: ${String(error)}`, { cause: error });
    }
  }
}

const DECODERS: Record<number, (body: Buffer) => unknown> = {
  [B.RowDescription]: decodeRowDescription,
  [B.DataRow]: decodeDataRow,
  [B.CommandComplete]: decodeCommandComplete,
  [B.ReadyForQuery]: decodeReadyForQuery,
  [B.ErrorResponse]: decodeErrorFields,
  [B.NoticeResponse]: decodeErrorFields,
  [B.BackendKeyData]: decodeBackendKeyData,
  [B.ParameterStatus]: decodeParameterStatus,
  [B.NotificationResponse]: decodeNotificationResponse,
};

describe("pgwire fuzz", () => {
  it("FrontendReader: 5000 mutated streams in random splits", () => {
    let decoded = 0;
    cases(5000, 1_000_000, (rng) => feed(new FrontendReader(), randomStream(FRONTEND_CORPUS, rng), () => decoded++));
    assert.ok(decoded > 1000, `only ${decoded} messages decoded: the mutations are too destructive to test much`);
  });

  it("FrontendReader: 2000 streams of random bytes", () => {
    cases(2000, 2_000_000, (rng) => {
      const stream = rng.bytes(rng.below(256));
      feed(new FrontendReader(), randomSplits(stream, rng, 1 + rng.below(16)), () => {});
    });
  });

  it("readStartupPacket: 5000 mutated packets, and every prefix of some", () => {
    cases(5000, 3_000_000, (rng) => {
      const buf = mutate(rng.pick(STARTUP_CORPUS), rng, 0);
      const ends = rng.below(10) === 0 ? Array.from({ length: buf.length + 1 }, (_, i) => i) : [buf.length];
      for (const end of ends) {
        onlyProtocolErrors(() => {
          const read = readStartupPacket(buf.subarray(0, end));
          if (read) assert.ok(read.length >= 8 && read.length <= end && read.length <= 10004);
        });
      }
    });
  });

  it("BackendReader and decoders: 5000 mutated streams in random splits", () => {
    let decoded = 0;
    cases(5000, 4_000_000, (rng) =>
      feed(new BackendReader(), randomStream(BACKEND_CORPUS, rng), (m) => {
        const decode = DECODERS[m.code];
        if (decode) onlyProtocolErrors(() => decode(m.body));
        decoded++;
      }),
    );
    assert.ok(decoded > 1000, `only ${decoded} messages framed`);
  });

  it("decoders: 20000 mutated and random bodies", () => {
    const bodies = BACKEND_CORPUS.map((m) => ({ code: m[0]!, body: m.subarray(5) }));
    cases(20000, 5_000_000, (rng) => {
      const { code, body } = rng.pick(bodies);
      const decode = rng.below(4) === 0 ? rng.pick(Object.values(DECODERS)) : DECODERS[code]!;
      onlyProtocolErrors(() => decode(rng.below(2) === 0 ? mutate(body, rng, 0) : rng.bytes(rng.below(40))));
    });
  });

  it("does not allocate from a length field: 64 readers told of 1 GiB messages hold only what arrived", () => {
    const before = process.memoryUsage().arrayBuffers;
    const readers: (FrontendReader | BackendReader)[] = [];
    for (let i = 0; i < 32; i++) {
      const frontend = new FrontendReader();
      frontend.push(frame("Q", [Buffer.from("select")], 0x3fffffff));
      assert.equal(frontend.next(), undefined);
      const backend = new BackendReader();
      backend.push(frame("D", [Buffer.from("row")], 0x7fffffff));
      assert.equal(backend.next(), undefined);
      readers.push(frontend, backend);
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
    assert.equal(readers.length, 64);
  });
});
