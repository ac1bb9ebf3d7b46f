import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { batchWritesPerTick } from "./batch-writes.js";

describe("batchWritesPerTick", () => {
  let server: Server;
  let socket: Socket;
  let received: Buffer[];
  let allReceived: Promise<void>;

  beforeEach(async () => {
    received = [];
    let ended!: () => void;
    allReceived = new Promise<void>((r) => (ended = r));
    server = createServer((s) => s.on("data", (d: Buffer) => received.push(d)).on("end", () => ended()));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    socket = batchWritesPerTick(connect((server.address() as AddressInfo).port, "127.0.0.1"));
    await once(socket, "connect");
  });

  afterEach(() => {
    socket.destroy();
    server.close();
  });

  it("holds a tick's small writes corked and sends them in order right after it", async () => {
    socket.write("one ");
    socket.write(Buffer.from("two "));
    assert.equal(socket.writableCorked, 1, "corked until the tick ends");
    assert.equal(socket.writableLength, 8, "nothing written yet");
    await new Promise<void>((r) => process.nextTick(r));
    assert.equal(socket.writableCorked, 0, "a keystroke does not wait for the loop's I/O phase");
    socket.write("three", () => socket.end());
    await allReceived;
    assert.equal(Buffer.concat(received).toString(), "one two three");
  });

  it("keeps a tick's bulk writes corked until the loop's I/O phase is over", async () => {
    const bulk = Buffer.alloc(16 * 1024, 1);
    socket.write(bulk);
    await new Promise<void>((r) => process.nextTick(r));
    assert.equal(socket.writableCorked, 1, "still corked after the tick");
    socket.write("tail");
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(socket.writableCorked, 0);
    socket.end();
    await allReceived;
    assert.ok(Buffer.concat(received).equals(Buffer.concat([bulk, Buffer.from("tail")])));
  });
});
