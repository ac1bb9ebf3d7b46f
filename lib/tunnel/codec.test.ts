import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { dataFrameOf, decodeFrame, encodeFrame } from "./codec.js";

const frames: TunnelFrame[] = [
  { frame: { $case: "data", value: Buffer.alloc(0) } },
  { frame: { $case: "data", value: Buffer.from("x") } },
  { frame: { $case: "data", value: randomBytes(127) } },
  { frame: { $case: "data", value: randomBytes(128) } },
  { frame: { $case: "data", value: randomBytes(16_384) } },
  { frame: { $case: "data", value: randomBytes(3 * 1024 * 1024 + 7) } },
  { frame: { $case: "open", value: { connection: "pg-prod" } } },
  { frame: { $case: "halfClose", value: {} } },
  { frame: { $case: "error", value: { code: "target_refused", message: "gone", nativeCode: "3D000" } } },
  { frame: { $case: "ready", value: { sessionId: "s", relayId: "r", signature: Buffer.from([1, 2, 3]) } } },
];

describe("tunnel frame codec", () => {
  it("encodes exactly as the generated encoder", () => {
    for (const f of frames)
      assert.ok(encodeFrame(f).equals(Buffer.from(TunnelFrame.encode(f).finish())), f.frame?.$case);
  });

  it("decodes to what the generated decoder yields", () => {
    for (const f of frames) {
      const bytes = Buffer.from(TunnelFrame.encode(f).finish());
      assert.deepEqual(decodeFrame(bytes), TunnelFrame.decode(bytes));
    }
  });

  it("falls back to the generated decoder when a data field is not the whole message", () => {
    const data = Buffer.from(TunnelFrame.encode({ frame: { $case: "data", value: Buffer.from("abc") } }).finish());
    const withTrailer = Buffer.concat([
      data,
      Buffer.from(TunnelFrame.encode({ frame: { $case: "halfClose", value: {} } }).finish()),
    ]);
    assert.deepEqual(decodeFrame(withTrailer), TunnelFrame.decode(withTrailer)); // protobuf: the last oneof field wins
    const truncated = data.subarray(0, data.length - 1);
    assert.throws(() => decodeFrame(truncated));
  });

  it("encodes joined chunks as the generated encoder encodes their concatenation", () => {
    for (const sizes of [[0], [1, 0, 2], [100, 27], [127, 1], [16_384, 16_384, 3], [1 << 20, 5]]) {
      const chunks = sizes.map((n) => randomBytes(n));
      const joined = Buffer.concat(chunks);
      const frame = dataFrameOf(chunks, joined.length);
      assert.deepEqual(frame.frame, { $case: "data", value: joined });
      const expected = Buffer.from(TunnelFrame.encode({ frame: { $case: "data", value: joined } }).finish());
      assert.ok(encodeFrame(frame).equals(expected), `chunks of ${sizes.join(", ")}`);
      assert.ok(encodeFrame(frame).equals(expected), "encoding twice gives the same bytes");
      assert.deepEqual(decodeFrame(encodeFrame(frame)), { frame: { $case: "data", value: joined } });
    }
  });
});
