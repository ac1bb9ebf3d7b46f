import { decisionName } from "../lib/recording/view.js";
import { decisionToJSON, type Decision } from "../proto/gen/vigil/v1/recording.js";
import { markField, Reader, readValue, type Envelope, type Span } from "./event-bytes.js";
import {
  ascii,
  beginBody,
  binaryAscii,
  binaryList,
  binaryString,
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
 * A command event as ingest reads it from its protobuf bytes: the values its batch keeps (the
 * summary's command number and decision) and where each field's bytes are, from which
 * `writeCommandRow` writes its row of the insert.
 */
export interface CommandEvent {
  type: "command";
  env: Envelope;
  command: number;
  decision: Decision;
  text: Span | undefined;
  source: Span | undefined;
  kinds: Span[];
  tablesRead: Span[];
  tablesWritten: Span[];
  /** Each Value's `text`, or null when the Value has none. */
  params: (Span | null)[];
  rule: Span | undefined;
  reason: Span | undefined;
}

/** kinds, tables_read, tables_written and params: the Command fields that repeat. */
const COMMAND_REPEATED = (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);

/**
 * A command body read straight from its protobuf bytes (storage/encoded-event.ts), for
 * `writeCommandRow`: no RecordingEvent, no proto3 JSON object, no strings. It takes only what it
 * reads exactly as the generic path (`RecordingEvent.decode`, `eventRow`) would: each field at most
 * once (repeated ones aside) and with its own wire type, no field it does not know, integers in
 * range, strings that are valid UTF-8. Anything else gives `undefined`, and the caller takes the
 * generic path. storage/encoded-event.test.ts compares both paths byte for byte.
 */
export function readCommand(env: Envelope): CommandEvent | undefined {
  const r = Reader.of(env.data, env.body);
  const ev: CommandEvent = {
    type: "command",
    env,
    command: 0,
    decision: 0,
    text: undefined,
    source: undefined,
    kinds: [],
    tablesRead: [],
    tablesWritten: [],
    params: [],
    rule: undefined,
    reason: undefined,
  };
  let seen: number | undefined = 0;
  while (r.pos < r.end) {
    const tag = r.varint();
    seen = markField(seen, tag, COMMAND_REPEATED);
    if (seen === undefined) return undefined;
    switch (tag) {
      case (1 << 3) | 0:
        ev.command = r.uint32();
        break;
      case (2 << 3) | 2:
        ev.text = r.string();
        break;
      case (3 << 3) | 2:
        ev.source = r.string();
        break;
      case (4 << 3) | 2:
        ev.kinds.push(r.string());
        break;
      case (5 << 3) | 2:
        ev.tablesRead.push(r.string());
        break;
      case (6 << 3) | 2:
        ev.tablesWritten.push(r.string());
        break;
      case (7 << 3) | 2: {
        const text = readValue(r);
        if (text === undefined) return undefined;
        ev.params.push(text);
        break;
      }
      case (8 << 3) | 0:
        ev.decision = r.int32();
        break;
      case (9 << 3) | 2:
        ev.rule = r.string();
        break;
      case (10 << 3) | 2:
        ev.reason = r.string();
        break;
      default:
        return undefined;
    }
    if (r.bad) return undefined;
  }
  return ev;
}

/** The most bytes `writeCommandRow` writes for `ev`. */
export function commandRowBytes(ev: CommandEvent): number {
  // The row holds the rule and the kinds twice (as columns and in the body), every other string once.
  return rowBytes(ev.env, 2 * (ev.env.body[1] - ev.env.body[0]));
}

/**
 * Write `eventRow(RecordingEvent.decode(ev.env.data))` into `out` at `pos` (room: `commandRowBytes`);
 * returns where it ends. Strings are copied as their UTF-8 bytes (in the body escaped as
 * JSON.stringify escapes them); the body's fields follow Command.toJSON (its order, defaults left out).
 */
export function writeCommandRow(ev: CommandEvent, out: Buffer, pos: number): number {
  const d = ev.env.data;
  pos = writeHead(ev.env, out, pos);
  pos = out.writeUInt32LE(ev.command, binaryAscii(out, pos, "command"));
  pos = binaryAscii(out, pos, DECISION_COLUMN[ev.decision] ?? decisionName(ev.decision));
  pos = binaryString(d, ev.rule, out, pos);
  pos = binaryList(d, ev.kinds, out, pos);
  const bodyAt = beginBody(out, pos);
  pos = ascii(out, bodyAt, `{"command":{`);
  const fieldsStart = pos;
  if (ev.command) pos = numberField(`"command":`, ev.command, out, pos);
  if (filled(ev.text)) pos = stringField(d, `"text":`, ev.text, out, pos);
  if (filled(ev.source)) pos = stringField(d, `"source":`, ev.source, out, pos);
  if (ev.kinds.length) pos = listField(d, `"kinds":`, ev.kinds, out, pos);
  if (ev.tablesRead.length) pos = listField(d, `"tablesRead":`, ev.tablesRead, out, pos);
  if (ev.tablesWritten.length) pos = listField(d, `"tablesWritten":`, ev.tablesWritten, out, pos);
  if (ev.params.length) pos = ascii(out, writeValues(d, ev.params, out, ascii(out, pos, `"params":`)), ",");
  if (ev.decision) pos = ascii(out, pos, DECISION_FIELD[ev.decision] ?? `"decision":"${decisionToJSON(ev.decision)}",`);
  if (filled(ev.rule)) pos = stringField(d, `"rule":`, ev.rule, out, pos);
  if (filled(ev.reason)) pos = stringField(d, `"reason":`, ev.reason, out, pos);
  return writeTail(ev.env, bodyAt, out, endObject(fieldsStart, pos));
}

/** The decision column and the body's decision field of the usual decisions, built once. */
const DECISION_COLUMN: Record<number, string> = {};
const DECISION_FIELD: Record<number, string> = {};
for (const d of [0, 1, 2, 3] as Decision[]) {
  DECISION_COLUMN[d] = decisionName(d);
  DECISION_FIELD[d] = `"decision":"${decisionToJSON(d)}",`;
}
