import assert from "node:assert/strict";
import { Stream } from "../../proto/gen/vigil/v1/recording.js";
import { toAsciicast } from "./asciicast.js";
import { EventChain, type EventBody } from "./chain.js";

function recording(bodies: [number, EventBody][]) {
  const chain = new EventChain("s-1");
  const start = 1_700_000_000_000_000n;
  return bodies.map(([ms, body]) => chain.append(body, start + BigInt(ms * 1000)));
}

const output = (data: string, stream = Stream.STREAM_OUTPUT): EventBody => ({
  $case: "output",
  value: { command: 0, stream, data },
});

describe("toAsciicast", () => {
  it("writes a v2 header from the first resize, then output and later resizes with relative times", () => {
    const cast = toAsciicast(
      recording([
        [0, { $case: "params", value: { params: [{ key: "term", value: "xterm" }] } }],
        [1, { $case: "resize", value: { cols: 120, rows: 40 } }],
        [250, output("$ ")],
        [1500, output("err\r\n", Stream.STREAM_STDERR)],
        [2000, { $case: "resize", value: { cols: 100, rows: 30 } }],
        [2100, output("hi\r\n", Stream.STREAM_INPUT)],
      ]),
    );
    const [header, ...lines] = cast
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(header, {
      version: 2,
      width: 120,
      height: 40,
      timestamp: 1_700_000_000,
      title: "vigil session s-1",
    });
    assert.deepEqual(lines, [
      [0.25, "o", "$ "],
      [1.5, "o", "err\r\n"],
      [2, "r", "100x30"],
    ]);
  });

  it("falls back to 80x24 without a pty", () => {
    const header = JSON.parse(toAsciicast(recording([[0, output("x")]])).split("\n")[0]!) as { width: number };
    assert.equal(header.width, 80);
  });
});
