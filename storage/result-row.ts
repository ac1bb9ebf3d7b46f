import { streamToJSON, type Stream } from "../proto/gen/vigil/v1/recording.js";
import { markField, Reader, readValue, type Envelope, type Span } from "./event-bytes.js";
import {
  ascii,
  beginBody,
  binaryAscii,
  digits,
  endObject,
  filled,
  listField,
  numberField,
  rowBytes,
  stringField,
  writeHead,
  writeTail,
  writeValues,
} from "./row-bytes.js";

/**
 * Result and output events read straight from their protobuf bytes, as storage/command-row.ts reads
 * commands and with the same rule: only what it reads exactly as `RecordingEvent.decode` and
 * `eventRow` would (each field once, repeated ones aside, with its own wire type, no unknown field,
 * integers below 2^53 and not negative, valid UTF-8); anything else gives `undefined` and takes the
 * generic path. A pgbench statement records a command and a result: together most of what
 * PostgreSQL sessions store.
 */
export interface ResultEvent {
  type: "result";
  env: Envelope;
  command: number;
  tag: Span | undefined;
  rows: number;
  bytes: number;
  durationUs: number;
  digest: Span | undefined;
  columns: Span[];
  /** Each Row's values: each Value's `text`, or null when it has none. */
  sample: (Span | null)[][];
  exitStatus: number | undefined;
  exitSignal: Span | undefined;
  /** RecordedError's code and message, when the field is there (set or not). */
  error: { code: Span | undefined; message: Span | undefined } | undefined;
}

export interface OutputEvent {
  type: "output";
  env: Envelope;
  command: number;
  stream: Stream;
  data: Span | undefined;
}

/** columns and sample: the Result fields that repeat. */
const RESULT_REPEATED = (1 << 7) | (1 << 8);

export function readResult(env: Envelope): ResultEvent | undefined {
  const r = Reader.of(env.data, env.body);
  const ev: ResultEvent = {
    type: "result",
    env,
    command: 0,
    tag: undefined,
    rows: 0,
    bytes: 0,
    durationUs: 0,
    digest: undefined,
    columns: [],
    sample: [],
    exitStatus: undefined,
    exitSignal: undefined,
    error: undefined,
  };
  let seen: number | undefined = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    seen = markField(seen, tag, RESULT_REPEATED);
    if (seen === undefined) return undefined;
    switch (tag) {
      case (1 << 3) | 0:
        ev.command = r.uint32();
        break;
      case (2 << 3) | 2:
        ev.tag = r.string();
        break;
      case (3 << 3) | 0:
        ev.rows = r.varint();
        break;
      case (4 << 3) | 0:
        ev.bytes = r.varint();
        break;
      case (5 << 3) | 0:
        ev.durationUs = r.varint();
        break;
      case (6 << 3) | 2:
        ev.digest = r.string();
        break;
      case (7 << 3) | 2:
        ev.columns.push(r.string());
        break;
      case (8 << 3) | 2: {
        const row = readRow(r);
        if (!row) return undefined;
        ev.sample.push(row);
        break;
      }
      case (9 << 3) | 0:
        ev.exitStatus = r.int32();
        break;
      case (10 << 3) | 2:
        ev.exitSignal = r.string();
        break;
      case (11 << 3) | 2: {
        const error = readError(r);
        if (!error) return undefined;
        ev.error = error;
        break;
      }
      default:
        return undefined;
    }
    if (r.bad) return undefined;
  }
  return ev;
}

/** A Row message (the next field of `r`): its values' texts. */
function readRow(r: Reader): (Span | null)[] | undefined {
  const row = Reader.of(r.data, r.span());
  const values: (Span | null)[] = [];
  while (row.pos < row.end) {
    if (row.varint() !== ((1 << 3) | 2)) return undefined;
    const text = readValue(row);
    if (text === undefined) return undefined;
    values.push(text);
  }
  return row.bad || r.bad ? undefined : values;
}

/** A RecordedError message (the next field of `r`). */
function readError(r: Reader): ResultEvent["error"] {
  const e = Reader.of(r.data, r.span());
  let code: Span | undefined;
  let message: Span | undefined;
  while (e.pos < e.end) {
    const tag = e.varint();
    if (tag === ((1 << 3) | 2) && !code) code = e.string();
    else if (tag === ((2 << 3) | 2) && !message) message = e.string();
    else return undefined;
  }
  return e.bad || r.bad ? undefined : { code, message };
}

/** Whether the result carries an error (the session summary lists its seq). */
export function resultHasError(ev: ResultEvent): boolean {
  return filled(ev.error?.code) || filled(ev.error?.message);
}

export function readOutput(env: Envelope): OutputEvent | undefined {
  const r = Reader.of(env.data, env.body);
  const ev: OutputEvent = { type: "output", env, command: 0, stream: 0, data: undefined };
  let seen: number | undefined = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    seen = markField(seen, tag);
    if (seen === undefined) return undefined;
    switch (tag) {
      case (1 << 3) | 0:
        ev.command = r.uint32();
        break;
      case (2 << 3) | 0:
        ev.stream = r.int32();
        break;
      case (3 << 3) | 2:
        ev.data = r.string();
        break;
      default:
        return undefined;
    }
    if (r.bad) return undefined;
  }
  return ev;
}

/** The most bytes `writeResultRow` or `writeOutputRow` writes for `ev`: each string once. */
export function resultRowBytes(ev: ResultEvent | OutputEvent): number {
  return rowBytes(ev.env, ev.env.body[1] - ev.env.body[0]);
}

/** `eventRow(RecordingEvent.decode(ev.env.data))` of a result event; the body as Result.toJSON writes it. */
export function writeResultRow(ev: ResultEvent, out: Buffer, pos: number): number {
  const d = ev.env.data;
  const bodyAt = columns(ev.env, "result", ev.command, out, pos);
  pos = ascii(out, bodyAt, `{"result":{`);
  const bodyStart = pos;
  if (ev.command) pos = numberField(`"command":`, ev.command, out, pos);
  if (filled(ev.tag)) pos = stringField(d, `"tag":`, ev.tag, out, pos);
  if (ev.rows) pos = quotedField(`"rows":"`, ev.rows, out, pos);
  if (ev.bytes) pos = quotedField(`"bytes":"`, ev.bytes, out, pos);
  if (ev.durationUs) pos = quotedField(`"durationUs":"`, ev.durationUs, out, pos);
  if (filled(ev.digest)) pos = stringField(d, `"digest":`, ev.digest, out, pos);
  if (ev.columns.length) pos = listField(d, `"columns":`, ev.columns, out, pos);
  if (ev.sample.length) {
    pos = ascii(out, pos, `"sample":[`);
    for (let i = 0; i < ev.sample.length; i++) {
      const values = ev.sample[i]!;
      if (i > 0) out[pos++] = 0x2c;
      if (!values.length) {
        pos = ascii(out, pos, "{}");
        continue;
      }
      pos = ascii(out, writeValues(d, values, out, ascii(out, pos, `{"values":`)), "}");
    }
    pos = ascii(out, pos, "],");
  }
  if (ev.exitStatus !== undefined) pos = numberField(`"exitStatus":`, ev.exitStatus, out, pos);
  if (ev.exitSignal) pos = stringField(d, `"exitSignal":`, ev.exitSignal, out, pos);
  if (ev.error) {
    pos = ascii(out, pos, `"error":{`);
    const errorStart = pos;
    if (filled(ev.error.code)) pos = stringField(d, `"code":`, ev.error.code, out, pos);
    if (filled(ev.error.message)) pos = stringField(d, `"message":`, ev.error.message, out, pos);
    pos = ascii(out, endObject(errorStart, pos), "},");
  }
  return writeTail(ev.env, bodyAt, out, endObject(bodyStart, pos));
}

/** `eventRow(RecordingEvent.decode(ev.env.data))` of an output event; the body as Output.toJSON writes it. */
export function writeOutputRow(ev: OutputEvent, out: Buffer, pos: number): number {
  const bodyAt = columns(ev.env, "output", ev.command, out, pos);
  pos = ascii(out, bodyAt, `{"output":{`);
  const bodyStart = pos;
  if (ev.command) pos = numberField(`"command":`, ev.command, out, pos);
  if (ev.stream) pos = ascii(out, pos, STREAM_FIELD[ev.stream] ?? `"stream":"${streamToJSON(ev.stream)}",`);
  if (filled(ev.data)) pos = stringField(ev.env.data, `"data":`, ev.data, out, pos);
  return writeTail(ev.env, bodyAt, out, endObject(bodyStart, pos));
}

/**
 * The row up to its body, for a type whose derived columns are its command alone (no decision, rule
 * or kinds). Returns where the body's JSON starts (`beginBody`).
 */
function columns(env: Envelope, type: "result" | "output", command: number, out: Buffer, pos: number): number {
  pos = out.writeUInt32LE(command, binaryAscii(out, writeHead(env, out, pos), type));
  out[pos++] = 0; // decision ""
  out[pos++] = 0; // rule ""
  out[pos++] = 0; // kinds []
  return beginBody(out, pos);
}

/** `"name":"123",`: a uint64 as proto3 JSON writes it (a string). */
function quotedField(name: string, n: number, out: Buffer, pos: number): number {
  return ascii(out, digits(out, ascii(out, pos, name), n), `",`);
}

const STREAM_FIELD: Record<number, string> = {};
for (const s of [1, 2, 3] as Stream[]) STREAM_FIELD[s] = `"stream":"${streamToJSON(s)}",`;
