import { createHash, hash as sha } from "node:crypto";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { RecordingEvent } from "../../proto/gen/vigil/v1/recording.js";
import { signEd25519, verifyEd25519 } from "../keys.js";
import { encodeEventAfter, EVENT } from "./event-writer.js";
import type { KeyObject } from "node:crypto";

export { RecordingEvent } from "../../proto/gen/vigil/v1/recording.js";

/** The version of the rules below; written into every event. */
export const FORMAT_VERSION = 1;

/** What a recorded event says, without its place in the chain. */
export type EventBody = NonNullable<RecordingEvent["body"]>;
export type EventType = EventBody["$case"];

const ZERO_HASH = Buffer.alloc(32);
const EMPTY = Buffer.alloc(0);

/** SHA-256(prev_hash || the event encoded with hash and signature empty). */
export function eventHash(event: RecordingEvent, prevHash: Uint8Array = event.prevHash): Buffer {
  const bytes = RecordingEvent.encode({
    ...event,
    prevHash: Buffer.from(prevHash),
    hash: EMPTY,
    signature: EMPTY,
  }).finish();
  return createHash("sha256").update(prevHash).update(bytes).digest();
}

/**
 * `eventHash` of an event whose hash and signature are still empty, as `append` builds it, with one
 * buffer and one digest: the writer gets prev_hash, then the event is encoded right behind it.
 */
function chainedHash(event: RecordingEvent): { hash: Buffer; hashed: Uint8Array } {
  // Commands and results (one each per statement) are written by hand; the rest by the generated code.
  let hashed = encodeEventAfter(event.prevHash, event);
  if (!hashed) {
    chainWriter.raw(event.prevHash);
    hashed = RecordingEvent.encode(event, chainWriter).finish();
  }
  return { hash: sha256(hashed), hashed };
}

/**
 * SHA-256 as a Buffer: taken as a "binary" (latin1) string, one character per byte, into a Buffer
 * from Node's pool. Asked for as "buffer", the digest gets an ArrayBuffer of its own (a malloc and
 * a backing store per event), which makes the call take about twice as long.
 */
function sha256(data: Uint8Array): Buffer {
  return Buffer.from(sha("sha256", data, "binary"), "binary");
}

/**
 * The protobuf of an event `EventChain` appended, from the bytes it hashed (`EventChain.hashed`):
 * those bytes past prev_hash's 32 are the event without hash and signature, and the two fields are
 * appended (a decoder takes fields in any order). Saves encoding the event a second time.
 */
export function encodeChained(event: RecordingEvent, hashed: Uint8Array): Uint8Array {
  const { hash, signature } = event;
  if (hash.length > 127 || signature.length > 127) return RecordingEvent.encode(event).finish();
  const body = hashed.subarray(ZERO_HASH.length);
  // From Node's pool, not an ArrayBuffer per event; every byte is written below.
  const out = Buffer.allocUnsafe(body.length + 2 + hash.length + (signature.length ? 2 + signature.length : 0));
  out.set(body, 0);
  let at = body.length;
  out[at++] = EVENT.hash;
  out[at++] = hash.length;
  out.set(hash, at);
  at += hash.length;
  if (signature.length) {
    out[at++] = EVENT.signature;
    out[at++] = signature.length;
    out.set(signature, at);
  }
  return out;
}

/** One writer for every chain: finish() resets it and keeps its grown buffer (hashing is synchronous). */
const chainWriter = new BinaryWriter();

/** Microseconds since the epoch, from the wall clock. */
export function nowUs(): bigint {
  // Multiplied as a number (exact below 2^53 µs, past the year 2200): one BigInt made, not three.
  return BigInt(Date.now() * 1000);
}

/**
 * One session's chain, as the relay builds it: each appended body gets the next seq, the time, the
 * previous hash and its own hash. `seal` appends the last event and signs it.
 */
export class EventChain {
  private seq = 0n;
  private prev: Buffer = ZERO_HASH;
  private lastUs = 0n;
  /** What the last append hashed: prev_hash, then the event encoded without hash and signature. */
  hashed: Uint8Array = EMPTY;

  constructor(readonly sessionId: string) {}

  append(body: EventBody, timeUs = nowUs()): RecordingEvent {
    // Time never goes backwards within a session, even when the wall clock does.
    if (timeUs < this.lastUs) timeUs = this.lastUs;
    this.lastUs = timeUs;
    const event: RecordingEvent = {
      version: FORMAT_VERSION,
      sessionId: this.sessionId,
      seq: this.seq++,
      timeUs,
      prevHash: this.prev,
      hash: EMPTY,
      signature: EMPTY,
      body,
    };
    const { hash, hashed } = chainedHash(event);
    event.hash = hash;
    this.hashed = hashed;
    this.prev = event.hash;
    return event;
  }

  /** Append the session's last event, signed with the relay's key. */
  seal(body: EventBody, key: KeyObject, timeUs?: bigint): RecordingEvent {
    const event = this.append(body, timeUs);
    event.signature = signEd25519(key, event.hash);
    return event;
  }

  /** How many events were appended. */
  get length(): number {
    return Number(this.seq);
  }
}

export type VerifyResult = { ok: true; events: number } | { ok: false; seq: number; reason: string; events: number };

/**
 * Recompute a session's chain from its stored events, in seq order, and check the relay's signature
 * on the last one. Answers the first seq that is missing or does not match, and why.
 *
 * `relayKey` is the relay's enrolled Ed25519 public key (raw 32 bytes) as the hub pinned it, never a
 * key taken from the recording itself.
 */
export function verifyChain(events: Iterable<RecordingEvent>, relayKey: Uint8Array | undefined): VerifyResult {
  let expected = 0;
  let prev: Buffer = ZERO_HASH;
  let last: RecordingEvent | undefined;
  let sessionId: string | undefined;
  for (const ev of events) {
    const seq = Number(ev.seq);
    const fail = (reason: string): VerifyResult => ({ ok: false, seq, reason, events: expected });
    if (seq !== expected) {
      return seq > expected
        ? {
            ok: false,
            seq: expected,
            reason: `event ${expected} is missing (next stored event is ${seq})`,
            events: expected,
          }
        : fail(`event ${seq} is stored twice or out of order`);
    }
    sessionId ??= ev.sessionId;
    if (ev.sessionId !== sessionId) return fail(`event belongs to session ${ev.sessionId}`);
    if (ev.version !== FORMAT_VERSION) return fail(`unknown recording format version ${ev.version}`);
    if (seq === 0 && ev.body?.$case !== "sessionStart") return fail("the first event is not session_start");
    if (ev.prevHash.length > 0 && !prev.equals(ev.prevHash)) return fail("prev_hash does not match the previous event");
    const hash = eventHash(ev, prev);
    if (!hash.equals(ev.hash)) return fail("hash does not match the event's content: the event was altered");
    if (ev.signature.length > 0 && ev.body?.$case !== "sessionEnd") return fail("only the last event may be signed");
    prev = hash;
    last = ev;
    expected++;
  }
  if (!last) return { ok: false, seq: 0, reason: "no events recorded for this session", events: 0 };
  const end = (reason: string): VerifyResult => ({ ok: false, seq: expected, reason, events: expected });
  if (last.body?.$case !== "sessionEnd") {
    return end("the recording ends without session_end (the session is still running, or its relay stopped)");
  }
  if (!relayKey)
    return {
      ok: false,
      seq: expected - 1,
      reason: "the recording relay's key is unknown to this hub",
      events: expected,
    };
  if (last.signature.length === 0 || !verifyEd25519(relayKey, last.hash, last.signature)) {
    return {
      ok: false,
      seq: expected - 1,
      reason: "the relay's signature on the last event does not verify",
      events: expected,
    };
  }
  return { ok: true, events: expected };
}

/** The body as proto3 JSON (`{"command":{...}}`), the form stored and exported. */
export function bodyToJson(body: EventBody): string {
  return JSON.stringify(RecordingEvent.toJSON({ ...EMPTY_EVENT, body }));
}

/** Parse a body stored by `bodyToJson`; throws on anything else. */
export function bodyFromJson(json: string): EventBody {
  const body = RecordingEvent.fromJSON(JSON.parse(json)).body;
  if (!body) throw new Error("recorded event has no body");
  return body;
}

const EMPTY_EVENT: RecordingEvent = RecordingEvent.create();

/** Short name of an event type as stored and shown: session_start, command, result, ... */
export function typeName(type: EventType): string {
  return type.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}
