import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { batchWritesPerTurn } from "./batch-writes.js";

describe("batchWritesPerTurn", () => {
  it("holds a turn's writes corked and sends them in order after it", async () => {
    const received: Buffer[] = [];
    let ended!: () => void;
    const allReceived = new Promise<void>((r) => (ended = r));
    const server = createServer((s) => s.on("data", (d: Buffer) => received.push(d)).on("end", () => ended()));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const socket = batchWritesPerTurn(connect((server.address() as AddressInfo).port, "127.0.0.1"));
    await once(socket, "connect");
    try {
      socket.write("one ");
      socket.write(Buffer.from("two "));
      await new Promise<void>((r) => process.nextTick(r));
      assert.equal(socket.writableCorked, 1, "corked past the tick, until the loop's I/O phase is over");
      assert.equal(socket.writableLength, 8, "nothing written yet");
      await new Promise<void>((r) => setImmediate(r));
      assert.equal(socket.writableCorked, 0);
      socket.write("three", () => socket.end());
      await allReceived;
      assert.equal(Buffer.concat(received).toString(), "one two three");
    } finally {
      (socket as Socket).destroy();
      server.close();
    }
  });
});
