// Splicing replacements into byte streams (terminal output, HTTP bodies) without decoding them.
//
// The detectors read a chunk as latin1 (one char per byte: the cheapest string V8 makes, and every
// byte survives the round trip whatever the encoding). All their patterns are ASCII except addresses,
// which take any byte ≥ 0x80 whole, so a span starts and ends on UTF-8 character boundaries — except
// at the edges of a chunk, where a character may be split between two reads. `utf8Safe` moves a
// span's edges off such a split, leaving those bytes as they came.
import type { Hit } from "./find.js";

/** Narrows [start, end) so it neither starts on a continuation byte nor ends inside a cut-off character. */
export function utf8Safe(buf: Uint8Array, start: number, end: number): [number, number] {
  while (start < end && (buf[start]! & 0xc0) === 0x80) start++;
  if (end === buf.length) end -= incompleteTail(buf, start);
  return [start, end];
}

/** Length of a multibyte sequence cut short at the end of buf (0 if the last character is whole). */
function incompleteTail(buf: Uint8Array, from: number): number {
  for (let back = 1; back <= 3 && buf.length - back >= from; back++) {
    const b = buf[buf.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * A new buffer: buf with each hit replaced by replace(hit, its bytes decoded as UTF-8). Undefined if
 * every hit shrank to nothing at a chunk edge.
 */
export function spliceBytes(
  buf: Buffer,
  hits: Hit[],
  replace: (hit: Hit, value: string) => string,
): Buffer | undefined {
  const parts: Buffer[] = [];
  let last = 0;
  for (const h of hits) {
    const [start, end] = utf8Safe(buf, Math.max(h.start, last), h.end);
    if (start >= end) continue;
    parts.push(buf.subarray(last, start), Buffer.from(replace(h, buf.toString("utf8", start, end)), "utf8"));
    last = end;
  }
  if (parts.length === 0) return undefined;
  parts.push(buf.subarray(last));
  return Buffer.concat(parts);
}
