import { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";

// TunnelFrame.data is field 4, length-delimited: tag byte (4 << 3) | 2.
const DATA_TAG = 0x22;
/** Room for the tag and a length varint of up to 5 bytes (any length below 2^35). */
const HEADROOM = 6;

/** A data frame whose payload has HEADROOM bytes of its own buffer in front of it: see dataFrameOf. */
interface DataFrameWithHeadroom extends TunnelFrame {
  headroom?: true;
}

/**
 * A data frame carrying `chunks` joined, built so that encodeFrame writes its header in front of the
 * payload instead of copying it: one copy of the bytes on the way to gRPC instead of two (join, encode).
 */
export function dataFrameOf(chunks: readonly Buffer[], total: number): TunnelFrame {
  const buf = Buffer.allocUnsafe(HEADROOM + total);
  let at = HEADROOM;
  for (const chunk of chunks) at += chunk.copy(buf, at);
  const frame: DataFrameWithHeadroom = { frame: { $case: "data", value: buf.subarray(HEADROOM) }, headroom: true };
  return frame;
}

/**
 * Encode a TunnelFrame. Data frames (nearly all traffic) are written by hand: one allocation and one
 * copy, where the generic writer grows its buffer several times per 64 KiB payload (the largest cost
 * in a profile of a 1 GiB transfer), and none for frames from dataFrameOf. Every other frame uses the
 * generated encoder.
 */
export function encodeFrame(frame: TunnelFrame): Buffer {
  if (frame.frame?.$case !== "data") return Buffer.from(TunnelFrame.encode(frame).finish());
  const data = frame.frame.value;
  if ((frame as DataFrameWithHeadroom).headroom) {
    const head = 1 + varintLength(data.length);
    const out = Buffer.from(data.buffer, data.byteOffset - head, head + data.length);
    out[0] = DATA_TAG;
    writeVarint(out, 1, data.length);
    return out;
  }
  const out = Buffer.allocUnsafe(1 + varintLength(data.length) + data.length);
  out[0] = DATA_TAG;
  const start = writeVarint(out, 1, data.length);
  data.copy(out, start);
  return out;
}

/**
 * Decode a TunnelFrame. A buffer that is exactly one data field is sliced, not copied (grpc-js hands
 * every message its own buffer); anything else goes through the generated decoder.
 */
export function decodeFrame(buf: Buffer): TunnelFrame {
  if (buf[0] === DATA_TAG) {
    const parsed = readVarint(buf, 1);
    if (parsed && parsed.next + parsed.value === buf.length) {
      return { frame: { $case: "data", value: buf.subarray(parsed.next) } };
    }
  }
  return TunnelFrame.decode(buf);
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Read a varint of at most 5 bytes (lengths below 2^35); undefined when truncated or longer. */
function readVarint(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (pos >= buf.length) return undefined;
    const byte = buf[pos++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return { value, next: pos };
  }
  return undefined;
}
