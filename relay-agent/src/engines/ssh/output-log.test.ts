import assert from "node:assert/strict";
import type { EventBody } from "../../../../lib/recording/chain.js";
import { Stream } from "../../../../proto/gen/vigil/v1/recording.js";
import type { SessionRecording } from "../../recording/recorder.js";
import { OutputLog } from "./output-log.js";

function recorder() {
  const events: EventBody[] = [];
  const recording: SessionRecording = { record: (b) => events.push(b), ok: () => true, end: async () => {} };
  return { events, recording };
}

const texts = (events: EventBody[]) => events.map((e) => (e.$case === "output" ? e.value.data : e.$case));

describe("OutputLog", () => {
  it("coalesces a burst into one event and never splits a UTF-8 character", () => {
    const { events, recording } = recorder();
    const log = new OutputLog(recording, () => undefined);
    const euro = Buffer.from("€");
    for (const b of [Buffer.from("a"), euro.subarray(0, 1), euro.subarray(1), Buffer.from("b")]) {
      log.write(Stream.STREAM_OUTPUT, b);
    }
    log.end();
    assert.deepEqual(texts(events), ["a€b"]);
  });

  it("records binary output as its size only", () => {
    const { events, recording } = recorder();
    const log = new OutputLog(recording, () => undefined);
    log.write(Stream.STREAM_OUTPUT, Buffer.from("header\n"));
    log.write(Stream.STREAM_OUTPUT, Buffer.from([1, 0, 2, 3]));
    log.write(Stream.STREAM_OUTPUT, Buffer.from("more"));
    log.end();
    assert.deepEqual(texts(events), ["header\n", "[vigil: 8 bytes of binary output, not recorded as text]\r\n"]);
  });
});
