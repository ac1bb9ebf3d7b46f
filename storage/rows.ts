import { bodyFromJson, bodyToJson, typeName, type EventBody } from "../lib/recording/chain.js";
import { decisionName } from "../lib/recording/view.js";
import { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { varint } from "./row-bytes.js";

/**
 * One row of the `events` table as inserted. The `*_hex` and `time_us` values go to EPHEMERAL
 * columns from which ClickHouse computes the stored ones (`hash` FixedString(32), `signature`,
 * `time` DateTime64(6)); reads select them back under the same names.
 *
 * The event's own fields are columns (session_id, seq, time, version, hash, signature) and its body
 * is stored whole as proto3 JSON: that is the source of truth. `type` … `kinds` are derived from
 * the body at insert, only so that search can filter on them; `rowMatchesBody` checks them against
 * the body again.
 */
// Types rather than interfaces: rows are passed to Executor.insert as plain records.
export type EventRow = DerivedColumns & {
  session_id: string;
  /** UInt64: ClickHouse may answer it as a number or a string. */
  seq: number | string;
  /** Microseconds since the epoch, as a decimal string (exact beyond 2^53). */
  time_us: string;
  version: number;
  body: string;
  hash_hex: string;
  /** Empty except on the session's last (signed) event. */
  signature_hex: string;
};

/** The columns that make up the RecordingEvent itself: all a replay or an export needs to read. */
export type EventColumns = Pick<
  EventRow,
  "session_id" | "seq" | "time_us" | "version" | "body" | "hash_hex" | "signature_hex"
>;

/** A row as read back: with `text`, which the table computes from the body (an ALIAS column). */
export type StoredEventRow = EventRow & {
  /** The command's text (command events only). */
  text: string;
};

/** The search columns stored beside a body, all derived from it. */
export type DerivedColumns = {
  type: string;
  /** The command number the event belongs to (command, result, output, approval); 0 otherwise. */
  command: number;
  /** allow | deny | review for command events; empty otherwise. */
  decision: string;
  rule: string;
  kinds: string[];
};

export function deriveColumns(body: EventBody): DerivedColumns {
  const type = (TYPE_NAMES[body.$case] ??= typeName(body.$case));
  switch (body.$case) {
    case "command": {
      const c = body.value;
      return { type, command: c.command, decision: decisionName(c.decision), rule: c.rule, kinds: c.kinds };
    }
    case "result":
    case "output":
    case "approval":
      return { type, command: body.value.command, decision: "", rule: "", kinds: [] };
    default:
      return { type, command: 0, decision: "", rule: "", kinds: [] };
  }
}

/** `typeName` of each body type, computed once: every stored event needs one. */
const TYPE_NAMES: Partial<Record<EventBody["$case"], string>> = {};

export function eventToRow(event: RecordingEvent): EventRow {
  if (!event.body) throw new Error(`event ${event.sessionId}/${event.seq} has no body`);
  return {
    session_id: event.sessionId,
    seq: Number(event.seq),
    time_us: event.timeUs.toString(),
    version: event.version,
    ...deriveColumns(event.body),
    body: bodyToJson(event.body),
    hash_hex: hex(event.hash),
    signature_hex: hex(event.signature),
  };
}

/**
 * The columns of an `eventRow`, in its order. `time`, `hash` and `signature` are given as they are
 * stored (a row need not go through the `*_hex` and `time_us` EPHEMERAL columns of `EventRow`).
 */
export const EVENT_ROW_COLUMNS = [
  "session_id",
  "seq",
  "time",
  "version",
  "type",
  "command",
  "decision",
  "rule",
  "kinds",
  "body",
  "hash",
  "signature",
] as const;

/**
 * An event as one row of ClickHouse's RowBinary format (the values of EVENT_ROW_COLUMNS, in order):
 * what ingest inserts. Each String is its UTF-8 length (LEB128) and bytes, seq and time are 64-bit
 * little-endian, version and command 32-bit, the hash its 32 bytes. Binary rows cost ClickHouse a
 * third of the CPU of the same rows as JSON text to insert (docs/recording.md), and need no escaping
 * outside the body's own JSON. Throws for an event the table cannot hold (no body, a hash that is not
 * 32 bytes, a time beyond Int64).
 */
export function eventRow(event: RecordingEvent): Buffer {
  if (!event.body) throw new Error(`event ${event.sessionId}/${event.seq} has no body`);
  if (event.hash.length !== 32)
    throw new Error(`event ${event.sessionId}/${event.seq} has a hash of ${event.hash.length} bytes, not 32`);
  const d = deriveColumns(event.body);
  const body = bodyToJson(event.body);
  const strings = [event.sessionId, d.type, d.decision, d.rule, ...d.kinds, body];
  // A UTF-16 code unit takes at most 3 bytes in UTF-8, and a length at most 5.
  let room = 8 + 8 + 4 + 4 + 5 + 32 + 5 + event.signature.length;
  for (const s of strings) room += 5 + 3 * s.length;
  const out = Buffer.allocUnsafe(room);
  let pos = textColumn(out, 0, event.sessionId);
  pos = out.writeBigUInt64LE(event.seq, pos);
  pos = out.writeBigInt64LE(event.timeUs, pos);
  pos = out.writeUInt32LE(event.version, pos);
  pos = textColumn(out, pos, d.type);
  pos = out.writeUInt32LE(d.command, pos);
  pos = textColumn(out, pos, d.decision);
  pos = textColumn(out, pos, d.rule);
  pos = varint(out, pos, d.kinds.length);
  for (const kind of d.kinds) pos = textColumn(out, pos, kind);
  pos = textColumn(out, pos, body);
  out.set(event.hash, pos);
  pos += 32;
  pos = varint(out, pos, event.signature.length);
  out.set(event.signature, pos);
  return out.subarray(0, pos + event.signature.length);
}

/** A String column from text. */
function textColumn(out: Buffer, pos: number, s: string): number {
  const length = Buffer.byteLength(s);
  pos = varint(out, pos, length);
  return pos + out.write(s, pos);
}

/** Decoded events hold Buffers already; anything else is viewed, not copied. */
function hex(bytes: Uint8Array): string {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString(
    "hex",
  );
}

/**
 * The RecordingEvent a row stores, for replay and verification. `prevHash` is left empty: it is
 * the previous event's hash, which the verifier recomputes from the chain itself.
 */
export function rowToEvent(row: EventColumns): RecordingEvent {
  return {
    version: Number(row.version),
    sessionId: row.session_id,
    seq: BigInt(row.seq),
    timeUs: BigInt(row.time_us),
    prevHash: Buffer.alloc(0),
    hash: Buffer.from(row.hash_hex, "hex"),
    signature: Buffer.from(row.signature_hex, "hex"),
    body: bodyFromJson(row.body),
  };
}

export type RowCheck = { ok: true } | { ok: false; column: string; reason: string };

/** Whether the row's search columns still say what its body says (they could be altered apart). */
export function rowMatchesBody(row: StoredEventRow): RowCheck {
  let body: EventBody;
  try {
    body = bodyFromJson(row.body);
  } catch (err) {
    return { ok: false, column: "body", reason: `the stored body does not parse: ${(err as Error).message}` };
  }
  const expected = { ...deriveColumns(body), text: body.$case === "command" ? body.value.text : "" };
  for (const column of Object.keys(expected) as (keyof typeof expected)[]) {
    const stored = column === "command" ? Number(row.command) : row[column];
    if (JSON.stringify(stored) !== JSON.stringify(expected[column])) {
      return {
        ok: false,
        column,
        reason: `stored column ${column} (${JSON.stringify(stored)}) does not match the event's body (${JSON.stringify(expected[column])})`,
      };
    }
  }
  return { ok: true };
}

/** Microseconds since the epoch as ClickHouse reads a DateTime64(6) in UTC: `2024-05-01 12:00:00.000001`. */
export function clickhouseTime(us: bigint): string {
  const ms = us / 1000n;
  const micros = ((us % 1_000_000n) + 1_000_000n) % 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // 2024-05-01T12:00:00.000Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${micros.toString().padStart(6, "0")}`;
}

/** ISO 8601 with microseconds, from microseconds since the epoch. */
export function isoTime(us: bigint): string {
  const t = clickhouseTime(us);
  return `${t.slice(0, 10)}T${t.slice(11)}Z`;
}
