/**
 * Two SSH messages ssh2's public API cannot send with text of our choosing, and that OpenSSH shows
 * to the user: a USERAUTH_BANNER during authentication (why a token or key was refused), and a
 * CHANNEL_OPEN_FAILURE with a description (why a destination cannot be reached). Both reach into
 * ssh2 1.x internals (its Protocol object), so they live here, small, and check what they use.
 */
import type { AuthContext, Connection } from "ssh2";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { sendPacket } = require("ssh2/lib/protocol/utils.js") as {
  sendPacket: (proto: unknown, packet: Buffer) => void;
};

const USERAUTH_BANNER = 53;
/** SSH_OPEN_ADMINISTRATIVELY_PROHIBITED: OpenSSH prints "administratively prohibited: <description>". */
const ADMINISTRATIVELY_PROHIBITED = 1;

interface PacketWriter {
  allocStart: number;
  alloc(size: number): Buffer;
  finalize(packet: Buffer): Buffer;
}
interface ProtocolInternals {
  _packetRW?: { write?: PacketWriter };
  channelOpenFail?: (remote: number, reason: number, description: string) => void;
}

/** Show `message` to the user while they log in (OpenSSH prints banners at LogLevel INFO and above). */
export function sendAuthBanner(auth: AuthContext, message: string): void {
  const proto = (auth as unknown as { _protocol?: ProtocolInternals })._protocol;
  const writer = proto?._packetRW?.write;
  if (!writer) return; // a future ssh2: the client still gets "Permission denied"
  const text = message.endsWith("\r\n") ? message : `${message}\r\n`;
  const len = Buffer.byteLength(text);
  let p = writer.allocStart;
  const packet = writer.alloc(1 + 4 + len + 4);
  packet[p] = USERAUTH_BANNER;
  packet.writeUInt32BE(len, ++p);
  packet.write(text, (p += 4), len, "utf8");
  packet.writeUInt32BE(0, p + len); // language tag
  sendPacket(proto, writer.finalize(packet));
}

/** Refuse a channel open with `message` as the description the client prints. */
export function refuseChannel(conn: Connection, reject: () => void, message: string): void {
  const proto = (conn as unknown as { _protocol?: ProtocolInternals })._protocol;
  const original = proto?.channelOpenFail;
  if (!proto || !original) return reject();
  proto.channelOpenFail = (remote) => original.call(proto, remote, ADMINISTRATIVELY_PROHIBITED, message);
  try {
    reject();
  } finally {
    proto.channelOpenFail = original;
  }
}
