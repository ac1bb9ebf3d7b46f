import assert from "node:assert/strict";
import { dataLength, fileOperation, Fxp, handleOf, PacketScanner, statusPacket } from "./sftp-packets.js";

const str = (s: string | Buffer) => {
  const b = Buffer.from(s);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
function packet(type: number, id: number, ...fields: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from([type]), u32(id), ...fields]);
  return Buffer.concat([u32(body.length), body]);
}
const open = (id: number, path: string, flags: number) => packet(Fxp.Open, id, str(path), u32(flags), u32(0));
const write = (id: number, handle: string, data: Buffer) =>
  packet(Fxp.Write, id, str(handle), Buffer.alloc(8), str(data));

describe("SFTP packets", () => {
  it("reads the operations policy judges", () => {
    assert.deepEqual(fileOperation(open(3, "/etc/passwd", 0x1a)), { id: 3, argv: ["put", "/etc/passwd"], write: true });
    assert.deepEqual(fileOperation(open(4, "/tmp/x", 0x01))?.argv, ["get", "/tmp/x"]);
    assert.deepEqual(fileOperation(packet(Fxp.Remove, 5, str("/a")))?.argv, ["rm", "/a"]);
    assert.deepEqual(fileOperation(packet(Fxp.Rename, 6, str("/a"), str("/b")))?.argv, ["mv", "/a", "/b"]);
    const posix = packet(Fxp.Extended, 7, str("posix-rename@openssh.com"), str("/a"), str("/c"));
    assert.deepEqual(fileOperation(posix)?.argv, ["mv", "/a", "/c"]);
    assert.equal(fileOperation(write(8, "h", Buffer.from("x"))), undefined);
  });

  it("answers a refusal with a STATUS packet", () => {
    const s = statusPacket(9, 3, "no");
    assert.equal(s.readUInt32BE(0), s.length - 4);
    assert.equal(s[4], Fxp.Status);
    assert.equal(s.readUInt32BE(5), 9);
    assert.equal(s.readUInt32BE(9), 3);
  });

  it("scans a stream cut anywhere: bodies pass as slices, judged packets are held with the rest", () => {
    const data = Buffer.alloc(20_000, 7);
    const stream = Buffer.concat([write(1, "hh", data), open(2, "/etc/shadow", 0x02), write(3, "hh", data)]);
    for (const cut of [1, 3, 9, 13, 40, 4096, 65536]) {
      const heads: string[] = [];
      const scanner = new PacketScanner((head) => {
        heads.push(head[4] === Fxp.Write ? `write ${handleOf(head)} ${dataLength(head)}` : `open`);
        return head[4] === Fxp.Open ? "hold" : "pass";
      });
      const out: Buffer[] = [];
      let held: Buffer | undefined;
      for (let at = 0; at < stream.length; at += cut) {
        let chunk: Buffer = stream.subarray(at, at + cut);
        for (;;) {
          const r = scanner.scan(chunk);
          out.push(...r.forward);
          if (!r.held) break;
          held = r.held.packet;
          out.push(held); // as if allowed
          chunk = r.held.rest;
        }
      }
      assert.deepEqual(Buffer.concat(out), stream, `cut ${cut}`);
      assert.deepEqual(heads, [`write ${Buffer.from("hh").toString("hex")} 20000`, "open", `write 6868 20000`]);
      assert.deepEqual(fileOperation(held!)?.argv, ["put", "/etc/shadow"]);
    }
  });

  it("passes a chunk of whole heads and bodies on as one slice of it, not a copy", () => {
    const data = Buffer.alloc(32_768, 7);
    const stream = Buffer.concat([write(1, "hh", data), write(2, "hh", data), write(3, "hh", data)]);
    const heads: number[] = [];
    const scanner = new PacketScanner((head) => {
      heads.push(head.readUInt32BE(5));
      return "pass";
    });
    // The second write's head is cut by the first chunk's end: only it is gathered.
    const cut = write(1, "hh", data).length + 10;
    const first = scanner.scan(stream.subarray(0, cut));
    assert.equal(first.forward.length, 1);
    assert.equal(first.forward[0]!.buffer, stream.buffer);
    const second = scanner.scan(stream.subarray(cut));
    assert.equal(Buffer.concat([...first.forward, ...second.forward]).equals(stream), true);
    assert.equal(second.forward.at(-1)!.buffer, stream.buffer);
    const writeHead = 4 + 1 + 4 + (4 + 2) + 8 + 4; // length, type, id, handle "hh", offset, data length
    assert.equal(second.forward.at(-1)!.length, stream.length - cut - (writeHead - 10));
    assert.deepEqual(heads, [1, 2, 3]);
  });

  it("refuses a stream that is not SFTP", () => {
    assert.throws(() => new PacketScanner(() => "pass").scan(Buffer.from("SSH-2.0-OpenSSH\r\n")), /not an SFTP packet/);
  });
});
