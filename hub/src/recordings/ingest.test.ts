import assert from "node:assert/strict";
import { deliveryCount, pendingAfter } from "./ingest.js";

describe("deliveryCount", () => {
  // Reply subjects as nats-server 2.9 (9 tokens) and newer servers (11, or 12 with a random token) send them.
  const replies: [string, number][] = [
    ["$JS.ACK.vigil-rec.ingest.1.42.40.1795353137106000000.238535", 1],
    ["$JS.ACK.vigil-rec.ingest.3.42.40.1795353137106000000.0", 3],
    ["$JS.ACK._.ABCHASH.vigil-rec.ingest.1.42.40.1795353137106000000.7", 1],
    ["$JS.ACK.hub.ABCHASH.vigil-rec.ingest.12.42.40.1795353137106000000.7.x9Zq", 12],
  ];

  it("reads the delivery count where nats.js's parseInfo does", () => {
    for (const [reply, count] of replies) assert.equal(deliveryCount(Buffer.from(reply)), count, reply);
  });

  it("treats anything it cannot read as a redelivery (0), so that the batch is looked up", () => {
    for (const reply of [
      "",
      "_INBOX.abc.def",
      "$JS.ACK.vigil-rec.ingest.x.42.40.1.2",
      "$JS.ACK.vigil-rec.ingest.0.42.40.1.2",
      "$JS.ACK.too.few.tokens",
      "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m.n",
    ]) {
      assert.equal(deliveryCount(Buffer.from(reply)), 0, reply);
    }
  });
});

describe("pendingAfter", () => {
  it("reads how many messages are waiting after this one, in every form of reply subject", () => {
    for (const [reply, pending] of [
      ["$JS.ACK.vigil-rec.ingest.1.42.40.1795353137106000000.238535", 238535],
      ["$JS.ACK.vigil-rec.ingest.3.42.40.1795353137106000000.0", 0],
      ["$JS.ACK._.ABCHASH.vigil-rec.ingest.1.42.40.1795353137106000000.7", 7],
      ["$JS.ACK.hub.ABCHASH.vigil-rec.ingest.12.42.40.1795353137106000000.7.x9Zq", 7],
    ] as const) {
      assert.equal(pendingAfter(Buffer.from(reply)), pending, reply);
    }
  });

  it("says -1 when the reply does not tell (the batch then does not wait to fill)", () => {
    for (const reply of [
      "",
      "_INBOX.abc.def",
      "$JS.ACK.vigil-rec.ingest.1.42.40.1.",
      "$JS.ACK.vigil-rec.ingest.1.42.40.1.x",
      "$JS.ACK.too.few.tokens",
      "$JS.ACK.a.b.c.d.e.f.g.h.i.j.k.l.m.n",
    ]) {
      assert.equal(pendingAfter(Buffer.from(reply)), -1, reply);
    }
  });
});
