import assert from "node:assert/strict";
import { once } from "node:events";
import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { VigilError } from "../errors.js";
import { FrameDuplex } from "./frame-duplex.js";
import { dataFrame, HALF_CLOSE } from "./frames.js";
import { LOCAL_WINDOW_BYTES, localCallPair } from "./local-call.js";

const bytesOf = (f: TunnelFrame) => (f.frame?.$case === "data" ? f.frame.value.toString() : `<${f.frame?.$case}>`);
const tick = () => new Promise<void>((r) => setImmediate(r));

describe("in-process tunnel call pair", () => {
  it("delivers frames in order, after write returns, then end", async () => {
    const [a, b] = localCallPair();
    const got: string[] = [];
    b.on("data", (f: TunnelFrame) => got.push(bytesOf(f)));
    const ended = once(b, "end");
    a.write(dataFrame(Buffer.from("one")));
    a.write(dataFrame(Buffer.from("two")));
    a.write(HALF_CLOSE);
    assert.deepEqual(got, [], "nothing is delivered inside write");
    a.end();
    a.write(dataFrame(Buffer.from("after end")));
    await ended;
    assert.deepEqual(got, ["one", "two", "<halfClose>"]);
  });

  it("holds frames while paused and ends only after they are delivered", async () => {
    const [a, b] = localCallPair();
    const got: string[] = [];
    let ended = false;
    b.on("data", (f: TunnelFrame) => {
      got.push(bytesOf(f));
      b.pause(); // one frame per resume
    });
    b.on("end", () => (ended = true));
    for (const s of ["1", "2", "3"]) a.write(dataFrame(Buffer.from(s)));
    a.end();
    await tick();
    assert.deepEqual(got, ["1"]);
    b.resume();
    await tick();
    assert.deepEqual(got, ["1", "2"]);
    assert.equal(ended, false);
    b.resume();
    await tick();
    b.resume();
    await tick();
    assert.deepEqual(got, ["1", "2", "3"]);
    assert.equal(ended, true);
  });

  it("asks the writer to wait once a window of data is unread, and drains when it is read", async () => {
    const [a, b] = localCallPair();
    b.pause();
    const chunk = Buffer.alloc(64 * 1024);
    let writes = 0;
    while (a.write(dataFrame(chunk))) writes++;
    assert.equal(writes + 1, LOCAL_WINDOW_BYTES / chunk.length);
    let drained = false;
    a.once("drain", () => (drained = true));
    let received = 0;
    b.on("data", (f: TunnelFrame) => (received += f.frame?.$case === "data" ? f.frame.value.length : 0));
    await tick();
    assert.equal(drained, false, "no drain while the reader is paused");
    b.resume();
    await tick();
    assert.equal(received, LOCAL_WINDOW_BYTES);
    assert.equal(drained, true);
  });

  it("carries a byte stream between two FrameDuplexes both ways, with half-close", async () => {
    const [hubEnd, relayEnd] = localCallPair();
    const hub = new FrameDuplex(hubEnd, { lostCode: "relay_lost", peer: "relay" });
    const relay = new FrameDuplex(relayEnd, { lostCode: "hub_unavailable", peer: "hub" });
    // The relay echoes everything back, upper-cased, then closes its side.
    relay.on("data", (c: Buffer) => relay.write(Buffer.from(c.toString().toUpperCase())));
    relay.on("end", () => relay.end());
    const big = Buffer.alloc(3 * LOCAL_WINDOW_BYTES + 17, "x");
    const received: Buffer[] = [];
    hub.on("data", (c: Buffer) => received.push(c));
    const hubClosed = once(hub, "close");
    hub.write(Buffer.from("hello "));
    hub.write(big);
    hub.end();
    await hubClosed;
    const all = Buffer.concat(received);
    assert.equal(all.length, 6 + big.length);
    assert.equal(all.subarray(0, 6).toString(), "HELLO ");
    assert.ok(all.subarray(6).every((c) => c === 0x58));
  });

  it("sends what one tick wrote as one data frame, and holds the writer while the call is full", async () => {
    const [hubEnd, relayEnd] = localCallPair();
    const hub = new FrameDuplex(hubEnd, { lostCode: "relay_lost", peer: "relay" });
    const frames: string[] = [];
    relayEnd.on("data", (f: TunnelFrame) => frames.push(bytesOf(f)));
    hub.write(Buffer.from("a"));
    hub.write(Buffer.from("b"));
    hub.write(Buffer.from("c"));
    await tick();
    assert.deepEqual(frames, ["abc"]);

    // The reader stops: the write that fills its window completes only on the drain, and the next waits behind it.
    relayEnd.pause();
    frames.length = 0;
    let done = 0;
    const chunk = Buffer.alloc(LOCAL_WINDOW_BYTES, "y");
    hub.write(chunk, () => done++);
    await tick();
    hub.write(Buffer.from("z"), () => done++);
    await tick();
    assert.equal(done, 0, "writes wait while the call is full");
    relayEnd.resume();
    await tick();
    await tick();
    assert.equal(done, 2);
    assert.equal(frames.join("").length, LOCAL_WINDOW_BYTES + 1);
  });

  it("turns a destroyed end into a coded error on the other", async () => {
    const [hubEnd, relayEnd] = localCallPair();
    const hub = new FrameDuplex(hubEnd, { lostCode: "relay_lost", peer: "relay" });
    const relay = new FrameDuplex(relayEnd, { lostCode: "hub_unavailable", peer: "hub" });
    relay.resume();
    relay.on("error", () => {}); // its own error, as the relay's session sees it
    const failed = once(hub, "error");
    relay.destroy(new VigilError("forbidden", "access revoked"));
    const [err] = (await failed) as [VigilError];
    assert.equal(err.code, "forbidden");
    assert.equal(err.message, "access revoked");
  });
});
