import { commandRowBytes, readCommand, writeCommandRow, type CommandEvent } from "./command-row.js";
import { readEnvelope } from "./event-bytes.js";
import {
  readOutput,
  readResult,
  resultRowBytes,
  writeOutputRow,
  writeResultRow,
  type OutputEvent,
  type ResultEvent,
} from "./result-row.js";

/**
 * An event read straight from its protobuf bytes, to be written as its row of the insert without decoding
 * it: the most frequent types (commands, results, output). Decoding each with ts-proto and
 * serializing it again took more of the insert thread than everything else it does per event.
 */
export type EncodedEvent = CommandEvent | ResultEvent | OutputEvent;

/**
 * The event in `data`, when it is one these readers take exactly as the generic path
 * (`RecordingEvent.decode`, `eventRow`) would; otherwise `undefined`, and the caller decodes it.
 * storage/encoded-event.test.ts compares both paths byte for byte.
 */
export function readEncodedEvent(data: Uint8Array): EncodedEvent | undefined {
  const env = readEnvelope(data);
  switch (env?.bodyField) {
    case 11:
      return readCommand(env);
    case 12:
      return readResult(env);
    case 13:
      return readOutput(env);
    default:
      return undefined;
  }
}

/** The most bytes `writeEncodedRow` writes for `ev`. */
export function encodedRowBytes(ev: EncodedEvent): number {
  return ev.type === "command" ? commandRowBytes(ev) : resultRowBytes(ev);
}

/** `eventRow(RecordingEvent.decode(bytes))`, written into `out` at `pos`; returns where it ends. */
export function writeEncodedRow(ev: EncodedEvent, out: Buffer, pos: number): number {
  switch (ev.type) {
    case "command":
      return writeCommandRow(ev, out, pos);
    case "result":
      return writeResultRow(ev, out, pos);
    case "output":
      return writeOutputRow(ev, out, pos);
  }
}
