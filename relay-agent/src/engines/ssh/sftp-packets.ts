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

/** Request types policy judges: their whole packet is read (they are small) before it is forwarded. */
const JUDGED = new Set<number>([
  Fxp.Open,
  Fxp.Remove,
  Fxp.Mkdir,
  Fxp.Rmdir,
  Fxp.Setstat,
  Fxp.Rename,
  Fxp.Symlink,
  Fxp.Extended,
]);

/**
 * How many leading bytes of a packet the inspector reads, given at least its first 5 (length and
 * type): the whole packet for judged requests, up to the handle (and the data length) for writes,
 * reads, closes and their answers, the type and id for the rest. Bodies are never read.
 */
export function headSize(head: Buffer): number {
  const total = head.readUInt32BE(0) + 4;
  const type = head[4]!;
  if (JUDGED.has(type)) return total;
  const handleAt = 13; // length, type, id, then the handle's own length
  const handle = head.length >= handleAt ? head.readUInt32BE(9) : -1;
  switch (type) {
    case Fxp.Write: // handle, uint64 offset, then the data's length
      return Math.min(total, handle < 0 ? handleAt : handleAt + handle + 12);
    case Fxp.Read:
    case Fxp.Close:
    case Fxp.Handle:
      return Math.min(total, handle < 0 ? handleAt : handleAt + handle);
    case Fxp.Data:
      return Math.min(total, handleAt);
    default:
      return Math.min(total, 9);
  }
}

export const isJudged = (head: Buffer): boolean => JUDGED.has(head[4]!);

/** What one chunk of the stream became: bytes to pass on now, and a judged packet held with what follows it. */
export interface Scanned {
  forward: Buffer[];
  held?: { packet: Buffer; rest: Buffer };
}

const EMPTY = Buffer.alloc(0);

/**
 * Finds packet boundaries in one direction of an SFTP stream without copying: a packet's head is
 * read where it lies in the chunk, and what passes goes on as one slice of the chunk it arrived in
 * (a 32 KiB write's head and data together). Only a head cut across two chunks is gathered into a
 * buffer of its own (see headSize for how much of a packet is a head), and a head that `onHead`
 * wants held stops the scan with the rest of the chunk returned.
 */
export class PacketScanner {
  /** A head begun in an earlier chunk, waiting for the rest of it. */
  private head: Buffer = EMPTY;
  /** Bytes of the current packet's body still to pass without reading. */
  private bodyLeft = 0;

  constructor(private readonly onHead: (head: Buffer) => "pass" | "hold") {}

  scan(chunk: Buffer): Scanned {
    const forward: Buffer[] = [];
    let p = 0;
    /** Start of the run of bytes that pass as one slice. */
    let from = 0;
    while (p < chunk.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, chunk.length - p);
        p += n;
        this.bodyLeft -= n;
        continue;
      }
      const size = this.head.length === 0 ? headWithin(chunk, p) : 0;
      let head: Buffer;
      let gathered = false;
      if (size > 0) {
        head = chunk.subarray(p, p + size);
        p += size;
      } else {
        // The head is cut by the chunk's end: what came before it passes; its bytes wait for the rest.
        if (p > from) forward.push(chunk.subarray(from, p));
        from = p;
        for (;;) {
          const want = this.head.length < 5 ? 5 : headSize(this.head);
          if (this.head.length >= want) break;
          const take = Math.min(want - this.head.length, chunk.length - p);
          this.head = Buffer.concat([this.head, chunk.subarray(p, p + take)]);
          p += take;
          if (this.head.length === 5) checkLength(this.head);
          if (p === chunk.length && this.head.length < (this.head.length < 5 ? 5 : headSize(this.head))) {
            return { forward }; // the head continues in the next chunk
          }
        }
        head = this.head;
        this.head = EMPTY;
        gathered = true;
      }
      this.bodyLeft = head.readUInt32BE(0) + 4 - head.length;
      if (this.onHead(head) === "hold") {
        // A gathered head's predecessors are forwarded already; an in-place one's are the run so far.
        if (!gathered && p - size > from) forward.push(chunk.subarray(from, p - size));
        return { forward, held: { packet: head, rest: chunk.subarray(p) } };
      }
      if (gathered) {
        forward.push(head);
        from = p;
      }
    }
    if (p > from) forward.push(chunk.subarray(from, p));
    return { forward };
  }
}

/** The length of the head that starts at `p` when the chunk holds all of it, else 0. */
function headWithin(chunk: Buffer, p: number): number {
  const left = chunk.length - p;
  if (left < 5) return 0;
  let size = 5;
  checkLength(chunk.subarray(p, p + 5));
  for (;;) {
    const want = headSize(chunk.subarray(p, p + size));
    if (size >= want) return size;
    if (left < want) return 0;
    size = want;
  }
}

function checkLength(head: Buffer): void {
  const len = head.readUInt32BE(0);
  if (len < 1 || len > MAX_PACKET) throw new Error(`not an SFTP packet (length ${len})`);
}
