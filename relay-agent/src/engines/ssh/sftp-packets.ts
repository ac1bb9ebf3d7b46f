/**
 * Just enough of the SFTP protocol (draft-ietf-secsh-filexfer-02, version 3, as OpenSSH speaks it)
 * to see which files a session opens, writes, removes and renames: packet framing and the fields of
 * the requests policy judges. Data is never parsed, only counted.
 */

/** Packet types, by their number on the wire. */
export const enum Fxp {
  Init = 1,
  Open = 3,
  Close = 4,
  Read = 5,
  Write = 6,
  Setstat = 9,
  Remove = 13,
  Mkdir = 14,
  Rmdir = 15,
  Rename = 18,
  Symlink = 20,
  Status = 101,
  Handle = 102,
  Data = 103,
  Extended = 200,
}

/** SSH_FX_PERMISSION_DENIED, the status a refused request gets. */
export const FX_PERMISSION_DENIED = 3;

const WRITE_FLAGS = 0x02 | 0x04 | 0x08 | 0x10; // WRITE, APPEND, CREAT, TRUNC

/** SFTP packets are at most 256 KiB in OpenSSH; anything far larger is not SFTP. */
export const MAX_PACKET = 1 << 20;

/** A request policy sees, in shell terms: `put /etc/passwd`, `rm /tmp/x`, `mv a b`. */
export interface FileOperation {
  id: number;
  /** argv for policy: [verb, ...paths]. */
  argv: string[];
  /** For opens: whether the file is opened for writing. */
  write?: boolean;
}

/** Split `buf` into whole packets; returns the packets and the offset of the unfinished rest. */
export function packets(buf: Buffer): { list: Buffer[]; rest: number } {
  const list: Buffer[] = [];
  let p = 0;
  while (buf.length - p >= 4) {
    const len = buf.readUInt32BE(p);
    if (len < 1 || len > MAX_PACKET) throw new Error(`not an SFTP packet (length ${len})`);
    if (buf.length - p < 4 + len) break;
    list.push(buf.subarray(p, p + 4 + len));
    p += 4 + len;
  }
  return { list, rest: p };
}

export const packetType = (packet: Buffer): number => packet[4]!;
export const requestId = (packet: Buffer): number => (packet.length >= 9 ? packet.readUInt32BE(5) : -1);

/** Reads the string fields after the request id. */
class Fields {
  private p = 9;
  constructor(private readonly packet: Buffer) {}
  string(): Buffer {
    const len = this.packet.readUInt32BE(this.p);
    const s = this.packet.subarray(this.p + 4, this.p + 4 + len);
    if (s.length !== len) throw new Error("truncated SFTP packet");
    this.p += 4 + len;
    return s;
  }
  text(): string {
    return this.string().toString("utf8");
  }
  uint32(): number {
    const v = this.packet.readUInt32BE(this.p);
    this.p += 4;
    return v;
  }
}

/** The operation a client request performs, when it is one policy judges; undefined otherwise. */
export function fileOperation(packet: Buffer): FileOperation | undefined {
  const type = packetType(packet);
  const id = requestId(packet);
  const f = new Fields(packet);
  switch (type) {
    case Fxp.Open: {
      const path = f.text();
      const write = (f.uint32() & WRITE_FLAGS) !== 0;
      return { id, argv: [write ? "put" : "get", path], write };
    }
    case Fxp.Remove:
      return { id, argv: ["rm", f.text()] };
    case Fxp.Mkdir:
      return { id, argv: ["mkdir", f.text()] };
    case Fxp.Rmdir:
      return { id, argv: ["rmdir", f.text()] };
    case Fxp.Setstat:
      return { id, argv: ["chmod", f.text()] };
    case Fxp.Rename:
      return { id, argv: ["mv", f.text(), f.text()] };
    case Fxp.Symlink:
      return { id, argv: ["ln", f.text(), f.text()] };
    case Fxp.Extended: {
      const name = f.text();
      if (name === "posix-rename@openssh.com") return { id, argv: ["mv", f.text(), f.text()] };
      if (name === "hardlink@openssh.com") return { id, argv: ["ln", f.text(), f.text()] };
      return undefined;
    }
    default:
      return undefined;
  }
}

/** The handle a Close, Read or Write names, or a Handle answer carries. */
export function handleOf(packet: Buffer): string {
  return new Fields(packet).string().toString("hex");
}

/** Bytes of data a Write carries or a Data answer returns. */
export function dataLength(packet: Buffer): number {
  const f = new Fields(packet);
  if (packetType(packet) === Fxp.Write) {
    f.string(); // handle
    f.uint32(); // offset, high
    f.uint32(); // offset, low
  }
  return f.uint32();
}

/** A Status answer refusing request `id` with `message`. */
export function statusPacket(id: number, code: number, message: string): Buffer {
  const msg = Buffer.from(message);
  const out = Buffer.alloc(4 + 1 + 4 + 4 + 4 + msg.length + 4);
  let p = out.writeUInt32BE(out.length - 4, 0);
  p = out.writeUInt8(Fxp.Status, p);
  p = out.writeUInt32BE(id, p);
  p = out.writeUInt32BE(code, p);
  p = out.writeUInt32BE(msg.length, p);
  p += msg.copy(out, p);
  out.writeUInt32BE(0, p); // language tag
  return out;
}
