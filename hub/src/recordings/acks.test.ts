import assert from "node:assert/strict";
import { AckAddresses } from "./acks.js";

describe("AckAddresses", () => {
  it("writes one PUB with the payload for every address, in order", () => {
    const acks = new AckAddresses();
    acks.add(Buffer.from("$JS.ACK.s.c.1.1.1.1.0"));
    acks.add(Buffer.from("$JS.ACK.s.c.1.2.2.1.0"));
    assert.equal(acks.count, 2);
    assert.equal(
      acks.frames(Buffer.from("+ACK")).toString(),
      "PUB $JS.ACK.s.c.1.1.1.1.0 4\r\n+ACK\r\nPUB $JS.ACK.s.c.1.2.2.1.0 4\r\n+ACK\r\n",
    );
    assert.deepEqual([...acks.subjects()], ["$JS.ACK.s.c.1.1.1.1.0", "$JS.ACK.s.c.1.2.2.1.0"]);
  });

  it("keeps every address as it grows past its first buffer", () => {
    const acks = new AckAddresses();
    const subjects = Array.from(
      { length: 5000 },
      (_, i) => `$JS.ACK.VIGIL_RECORDINGS.vigil-ingest.1.${i}.${i}.1795353137106000000.${5000 - i}`,
    );
    for (const s of subjects) acks.add(Buffer.from(s));
    assert.deepEqual([...acks.subjects()], subjects);
    const nak = `-NAK {"delay":2000000000}`;
    const frames = acks.frames(Buffer.from(nak)).toString();
    assert.equal(frames, subjects.map((s) => `PUB ${s} ${nak.length}\r\n${nak}\r\n`).join(""));
  });
});
