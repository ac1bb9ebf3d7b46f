import { FEATURE_NOT_SUPPORTED, PROGRAM_LIMIT_EXCEEDED, PROTOCOL_VIOLATION, PgProtocolError } from "./errors.js";
import { MessageWriter, cstringLength } from "./message-writer.js";

/** The first packet on a connection; it has no type byte, its meaning is in the version word. */
export type StartupPacket =
  | { type: "startup"; major: number; minor: number; params: Record<string, string> }
  | { type: "ssl" }
  | { type: "gssenc" }
  | { type: "cancel"; pid: number; secret: Buffer };

// Request codes are protocol versions with major 1234 (pqcomm.h).
const CANCEL_REQUEST_CODE = (1234 << 16) | 5678;
const SSL_REQUEST_CODE = (1234 << 16) | 5679;
const GSSENC_REQUEST_CODE = (1234 << 16) | 5680;

/** PostgreSQL's MAX_STARTUP_PACKET_LENGTH, which it applies to the packet minus its length word. */
const MAX_STARTUP_BODY = 10000;
/** Length word + version word: an SSLRequest is exactly that. */
const MIN_STARTUP_LENGTH = 8;
const MIN_CANCEL_KEY = 4;
const MAX_CANCEL_KEY = 256;
const LATEST_MINOR = 2;

/**
 * Parse the startup-phase packet at the start of `buf`, or undefined until all of it has arrived.
 * `length` is how much of `buf` it used: after an SSLRequest or GSSENCRequest the caller must
 * check nothing follows before the handshake (CVE-2021-23214), so it needs to know.
 *
 * Minor versions above 3.2 are returned as sent: the server's answer is NegotiateProtocolVersion,
 * which is the caller's to send. A missing `user` is the caller's to reject too. Parameters are
 * decoded as UTF-8; repeated names keep the last value, as PostgreSQL does. `params` has no
 * prototype, so a parameter named "__proto__" or "constructor" is just a parameter.
 *
 * A client using direct TLS (PostgreSQL 17, sslnegotiation=direct) opens with a TLS record, first
 * byte 0x16, not a packet: look for that before calling this.
 */
export function readStartupPacket(buf: Buffer): { packet: StartupPacket; length: number } | undefined {
  if (buf.length < 4) return undefined;
  const length = buf.readInt32BE(0);
  if (length < MIN_STARTUP_LENGTH) {
    throw new PgProtocolError(PROTOCOL_VIOLATION, `invalid length of startup packet: ${length}`);
  }
  if (length - 4 > MAX_STARTUP_BODY) {
    throw new PgProtocolError(
      PROGRAM_LIMIT_EXCEEDED,
      `startup packet of ${length} bytes exceeds the limit of ${MAX_STARTUP_BODY + 4}`,
    );
  }
  if (buf.length < length) return undefined;
  const code = buf.readInt32BE(4);
  const packet = buf.subarray(0, length);
  switch (code) {
    case SSL_REQUEST_CODE:
      expectLength(packet, 8, "SSLRequest");
      return { packet: { type: "ssl" }, length };
    case GSSENC_REQUEST_CODE:
      expectLength(packet, 8, "GSSENCRequest");
      return { packet: { type: "gssenc" }, length };
    case CANCEL_REQUEST_CODE:
      return { packet: readCancel(packet), length };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new PgProtocolError(
      FEATURE_NOT_SUPPORTED,
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.${LATEST_MINOR}`,
    );
  }
  return { packet: { type: "startup", major, minor, params: readParams(packet) }, length };
}

function expectLength(packet: Buffer, expected: number, what: string): void {
  if (packet.length !== expected) {
    throw new PgProtocolError(PROTOCOL_VIOLATION, `${what} of ${packet.length} bytes, expected ${expected}`);
  }
}

function readCancel(packet: Buffer): StartupPacket {
  const keyLength = packet.length - 12;
  if (keyLength < MIN_CANCEL_KEY || keyLength > MAX_CANCEL_KEY) {
    throw new PgProtocolError(
      PROTOCOL_VIOLATION,
      `CancelRequest key of ${keyLength} bytes, expected ${MIN_CANCEL_KEY} to ${MAX_CANCEL_KEY}`,
    );
  }
  // Copied: the caller's buffer is usually a reused accumulation buffer.
  return { type: "cancel", pid: packet.readInt32BE(8), secret: Buffer.from(packet.subarray(12)) };
}

/** `name\0value\0` pairs, then one `\0` that must be the packet's last byte (backend_startup.c). */
function readParams(packet: Buffer): Record<string, string> {
  const params: Record<string, string> = Object.create(null);
  let pos = 8;
  for (;;) {
    if (pos >= packet.length) throw startupError("missing the terminating NUL");
    if (packet[pos] === 0) break;
    const nameEnd = packet.indexOf(0, pos);
    if (nameEnd < 0) throw startupError(`parameter name at offset ${pos} is not NUL-terminated`);
    const name = packet.toString("utf8", pos, nameEnd);
    const valueEnd = packet.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw startupError(`parameter "${name}" has no NUL-terminated value`);
    params[name] = packet.toString("utf8", nameEnd + 1, valueEnd);
    pos = valueEnd + 1;
  }
  if (pos !== packet.length - 1) {
    throw startupError(`${packet.length - 1 - pos} bytes after the terminating NUL`);
  }
  return params;
}

function startupError(detail: string): PgProtocolError {
  return new PgProtocolError(PROTOCOL_VIOLATION, `invalid startup packet layout: ${detail}`);
}

/** A StartupMessage for the relay's own connection to the target. */
export function serializeStartup(params: Record<string, string>, minor = 0): Buffer {
  const entries = Object.entries(params);
  let bodyLength = 4 + 1;
  for (const [name, value] of entries) {
    if (name === "") throw new TypeError("startup parameter name is empty");
    bodyLength += cstringLength(name, "startup parameter name") + cstringLength(value, `startup parameter ${name}`);
  }
  const w = new MessageWriter(undefined, bodyLength).int16(3).int16(minor);
  for (const [name, value] of entries) w.cstring(name).cstring(value);
  return w.byte(0).done();
}

/** A CancelRequest; `secret` is BackendKeyData's key: 4 bytes in protocol 3.0, up to 256 in 3.2. */
export function serializeCancelRequest(pid: number, secret: Buffer): Buffer {
  if (secret.length < MIN_CANCEL_KEY || secret.length > MAX_CANCEL_KEY) {
    throw new RangeError(`cancel key of ${secret.length} bytes, expected ${MIN_CANCEL_KEY} to ${MAX_CANCEL_KEY}`);
  }
  return new MessageWriter(undefined, 8 + secret.length).int32(CANCEL_REQUEST_CODE).int32(pid).bytes(secret).done();
}
