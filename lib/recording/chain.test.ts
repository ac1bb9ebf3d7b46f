import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { generateKey } from "../keys.js";
import { encodeChained, EventChain, eventHash, RecordingEvent, verifyChain, type EventBody } from "./chain.js";

const bodies: EventBody[] = [
  {
    $case: "sessionStart",
    value: {
      connection: "db",
      connectionType: "postgres",
      segment: "local",
      relayId: "r1",
      hubId: "h1",
      user: "agent-ü",
      groups: ["a", "b"],
      clientAddress: "127.0.0.1:5000",
      params: [{ key: "application_name", value: "psql" }],
      target: "127.0.0.1:5432",
    },
  },
  {
    $case: "command",
    value: {
      command: 1,
      text: "SELECT 'ünïcødé', repeat('x', 300)".repeat(20),
      source: "sql",
      kinds: ["select"],
      tablesRead: ["t"],
      tablesWritten: [],
      params: [{ text: "1" }, {}],
      decision: 1,
      rule: "",
      reason: "",
    },
  },
  { $case: "error", value: { code: "x", message: "" } },
];

describe("recording hash chain", () => {
  it("appends events whose hash is SHA-256(prev_hash || the event encoded with hash and signature empty)", () => {
    const chain = new EventChain("s-1");
    let prev: Buffer = Buffer.alloc(32);
    for (const body of bodies) {
      const ev = chain.append(body, 1_700_000_000_000_000n);
      assert.ok(prev.equals(ev.prevHash));
      const bytes = RecordingEvent.encode({ ...ev, hash: Buffer.alloc(0), signature: Buffer.alloc(0) }).finish();
      const expected = createHash("sha256").update(prev).update(bytes).digest();
      assert.ok(expected.equals(ev.hash));
      assert.ok(eventHash(ev).equals(ev.hash));
      prev = ev.hash;
    }
  });

  it("encodeChained gives each event's protobuf from what the chain hashed, the signed last one too", () => {
    const key = generateKey();
    const chain = new EventChain("s-enc");
    const events = bodies.map((b) => [chain.append(b), chain.hashed] as const);
    const end = chain.seal({ $case: "sessionEnd", value: { error: "gone", commands: 1 } }, key.privateKey);
    events.push([end, chain.hashed]);
    for (const [ev, hashed] of events) {
      const decoded = RecordingEvent.decode(encodeChained(ev, hashed));
      assert.deepEqual(decoded, RecordingEvent.decode(RecordingEvent.encode(ev).finish()));
      assert.ok(Buffer.from(decoded.hash).equals(ev.hash));
    }
    assert.equal(RecordingEvent.decode(encodeChained(end, chain.hashed)).signature.length, 64);
    assert.deepEqual(
      verifyChain(
        events.map(([ev, hashed]) => RecordingEvent.decode(encodeChained(ev, hashed))),
        key.publicRaw,
      ),
      {
        ok: true,
        events: events.length,
      },
    );
  });

  it("verifies a sealed chain and names the first altered event", () => {
    const key = generateKey();
    const chain = new EventChain("s-2");
    const events = bodies.map((b) => chain.append(b));
    events.push(chain.seal({ $case: "sessionEnd", value: { error: "", commands: 1 } }, key.privateKey));
    assert.deepEqual(verifyChain(events, key.publicRaw), { ok: true, events: 4 });
    const altered = events.map((e) => RecordingEvent.fromJSON(RecordingEvent.toJSON(e)));
    (altered[1]!.body as Extract<EventBody, { $case: "command" }>).value.text = "SELECT 1";
    const result = verifyChain(altered, key.publicRaw);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.seq, 1);
  });
});
