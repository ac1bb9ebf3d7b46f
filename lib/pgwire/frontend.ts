import { BodyReader } from "./body-reader.js";
import { PROGRAM_LIMIT_EXCEEDED, PROTOCOL_VIOLATION, PgProtocolError } from "./errors.js";
import { FrameBuffer } from "./frame-buffer.js";
import { MessageWriter, cstringLength } from "./message-writer.js";

export { readStartupPacket, serializeCancelRequest, serializeStartup, type StartupPacket } from "./startup.js";

/** Type bytes of the messages a client sends after startup. */
export const F = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  Password: 0x70, // p (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse)
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;

export type FrontendMessage =
  | { type: "query"; text: string }
  | { type: "parse"; name: string; text: string; paramTypes: number[] }
  | {
      type: "bind";
      portal: string;
      statement: string;
      paramFormats: number[];
      /** Views into the message; null is SQL NULL. */
      params: (Buffer | null)[];
      resultFormats: number[];
    }
  | { type: "describe"; target: "S" | "P"; name: string }
  /** `maxRows` as sent; PostgreSQL treats zero and negatives as "all rows". */
  | { type: "execute"; portal: string; maxRows: number }
  | { type: "sync" }
  | { type: "flush" }
  | { type: "close"; target: "S" | "P"; name: string }
  | { type: "copyData"; data: Buffer }
  | { type: "copyDone" }
  | { type: "copyFail"; message: string }
  | { type: "terminate" }
  /** Raw body: whether it is a password, a SASL message or a GSS token depends on the auth exchange. */
  | { type: "password"; data: Buffer }
  | { type: "functionCall"; body: Buffer };

export type FrontendMessageOf<T extends FrontendMessage["type"]> = Extract<FrontendMessage, { type: T }>;

// Size limits from PostgreSQL (libpq.h, postgres.c SocketBackend); lengths include the length word.
const SMALL_MESSAGE_LIMIT = 10000;
const LARGE_MESSAGE_LIMIT = 0x3fffffff;
/** auth.c reads 'p' with PG_MAX_AUTH_TOKEN_LENGTH: it arrives before the client is authenticated. */
const AUTH_MESSAGE_LIMIT = 65535;

/** Limit per type byte; zero for a type a client may not send. */
const LIMITS = new Uint32Array(256);
for (const code of [F.Sync, F.Flush, F.Terminate, F.Describe, F.Close, F.Execute, F.CopyDone, F.CopyFail]) {
  LIMITS[code] = SMALL_MESSAGE_LIMIT;
}
for (const code of [F.Query, F.Parse, F.Bind, F.CopyData, F.FunctionCall]) LIMITS[code] = LARGE_MESSAGE_LIMIT;
LIMITS[F.Password] = AUTH_MESSAGE_LIMIT;

const NAMES = new Map<number, string>(Object.entries(F).map(([name, code]) => [code, name]));

/**
 * Splits a client's byte stream into messages. `raw` is the whole message exactly as received
 * (a view into the pushed chunk when it fits in one), so a proxy forwards what it inspected
 * without re-serializing it.
 *
 * The type byte is checked as soon as it arrives and the length as soon as the next four do, so
 * an oversize message is refused before its body is buffered. The first PgProtocolError leaves
 * the stream unframeable: every later `next()` throws it again, and the caller should send it as
 * an ErrorResponse and close. Which types are valid when (e.g. 'p' only during authentication)
 * is the caller's to check: the reader knows framing, not session state.
 */
export class FrontendReader {
  readonly #frames = new FrameBuffer();
  #failure: PgProtocolError | undefined;

  push(chunk: Buffer): void {
    this.#frames.push(chunk);
  }

  /** Bytes received and not yet returned by `next()`. */
  get buffered(): number {
    return this.#frames.buffered;
  }

  next(): { msg: FrontendMessage; raw: Buffer } | undefined {
    if (this.#failure) throw this.#failure;
    try {
      return this.#next();
    } catch (error) {
      if (error instanceof PgProtocolError) this.#failure = error;
      throw error;
    }
  }

  #next(): { msg: FrontendMessage; raw: Buffer } | undefined {
    const frames = this.#frames;
    if (frames.buffered === 0) return undefined;
    const code = frames.byteAt(0);
    const limit = LIMITS[code]!;
    if (limit === 0) throw new PgProtocolError(PROTOCOL_VIOLATION, `invalid frontend message type ${code}`);
    if (frames.buffered < 5) return undefined;
    const length = frames.int32At(1);
    if (length < 4) {
      throw new PgProtocolError(PROTOCOL_VIOLATION, `${NAMES.get(code)} message has invalid length ${length}`);
    }
    if (length > limit) {
      throw new PgProtocolError(
        PROGRAM_LIMIT_EXCEEDED,
        `${NAMES.get(code)} message length ${length} exceeds the limit of ${limit}`,
      );
    }
    if (frames.buffered < 1 + length) return undefined;
    const raw = frames.take(1 + length);
    return { msg: decodeFrontendMessage(code, raw.subarray(5)), raw };
  }
}

const SYNC = Object.freeze({ type: "sync" } as const);
const FLUSH = Object.freeze({ type: "flush" } as const);
const TERMINATE = Object.freeze({ type: "terminate" } as const);
const COPY_DONE = Object.freeze({ type: "copyDone" } as const);

function decodeFrontendMessage(code: number, body: Buffer): FrontendMessage {
  switch (code) {
    case F.Query: {
      const r = new BodyReader(body, "Query");
      const text = r.cstring("query string");
      r.end();
      return { type: "query", text };
    }
    case F.Parse:
      return decodeParse(new BodyReader(body, "Parse"));
    case F.Bind:
      return decodeBind(new BodyReader(body, "Bind"));
    case F.Describe:
    case F.Close: {
      const r = new BodyReader(body, code === F.Describe ? "Describe" : "Close");
      const target = readTarget(r);
      const name = r.cstring("name");
      r.end();
      return { type: code === F.Describe ? "describe" : "close", target, name };
    }
    case F.Execute: {
      const r = new BodyReader(body, "Execute");
      const portal = r.cstring("portal name");
      const maxRows = r.int32("row limit");
      r.end();
      return { type: "execute", portal, maxRows };
    }
    case F.Sync:
      return empty(body, "Sync", SYNC);
    case F.Flush:
      return empty(body, "Flush", FLUSH);
    case F.Terminate:
      return empty(body, "Terminate", TERMINATE);
    case F.CopyDone:
      return empty(body, "CopyDone", COPY_DONE);
    case F.CopyFail: {
      const r = new BodyReader(body, "CopyFail");
      const message = r.cstring("error message");
      r.end();
      return { type: "copyFail", message };
    }
    case F.CopyData:
      return { type: "copyData", data: body };
    case F.Password:
      return { type: "password", data: body };
    case F.FunctionCall:
      return { type: "functionCall", body };
  }
  throw new PgProtocolError(PROTOCOL_VIOLATION, `invalid frontend message type ${code}`);
}

function decodeParse(r: BodyReader): FrontendMessage {
  const name = r.cstring("statement name");
  const text = r.cstring("query string");
  const count = r.uint16("parameter type count");
  const paramTypes: number[] = [];
  for (let i = 0; i < count; i++) paramTypes.push(r.uint32("parameter type"));
  r.end();
  return { type: "parse", name, text, paramTypes };
}

function decodeBind(r: BodyReader): FrontendMessage {
  const portal = r.cstring("portal name");
  const statement = r.cstring("statement name");
  const paramFormats = readFormats(r, "parameter");
  const count = r.uint16("parameter count");
  // postgres.c exec_bind_message: one format code applies to all parameters, else one each.
  if (paramFormats.length > 1 && paramFormats.length !== count) {
    throw r.error(`${paramFormats.length} parameter format codes for ${count} parameters`);
  }
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < count; i++) {
    const length = r.int32("parameter length");
    if (length === -1) {
      params.push(null);
      continue;
    }
    if (length < 0 || length > r.remaining) {
      throw r.error(`parameter ${i + 1} has length ${length}, ${r.remaining} bytes left`);
    }
    params.push(r.bytes(length, "parameter value"));
  }
  const resultFormats = readFormats(r, "result");
  r.end();
  return { type: "bind", portal, statement, paramFormats, params, resultFormats };
}

/** Format codes are kept as sent: PostgreSQL itself rejects codes other than 0 and 1 only when used. */
function readFormats(r: BodyReader, what: "parameter" | "result"): number[] {
  const [countField, codeField] = FORMAT_FIELDS[what];
  const count = r.uint16(countField);
  const formats: number[] = [];
  for (let i = 0; i < count; i++) formats.push(r.int16(codeField));
  return formats;
}

const FORMAT_FIELDS = {
  parameter: ["parameter format count", "parameter format code"],
  result: ["result format count", "result format code"],
} as const;

function readTarget(r: BodyReader): "S" | "P" {
  const target = r.byte("target");
  if (target === 0x53) return "S";
  if (target === 0x50) return "P";
  throw r.error(`invalid subtype ${target}, expected 'S' or 'P'`);
}

/** Stricter than PostgreSQL for Terminate and CopyDone, whose bodies it ignores: no client sends one. */
function empty<T extends FrontendMessage>(body: Buffer, message: string, msg: T): T {
  if (body.length !== 0)
    throw new PgProtocolError(PROTOCOL_VIOLATION, `${message}: unexpected ${body.length}-byte body`);
  return msg;
}

export function serializeQuery(text: string): Buffer {
  return new MessageWriter(F.Query, cstringLength(text, "query")).cstring(text).done();
}

/** Describe of a statement ('S') or a portal ('P'). */
export function serializeDescribe(target: "S" | "P", name: string): Buffer {
  return new MessageWriter(F.Describe, 1 + cstringLength(name, "describe name"))
    .byte(target.charCodeAt(0))
    .cstring(name)
    .done();
}

export function serializeSync(): Buffer {
  return new MessageWriter(F.Sync, 0).done();
}

export function serializeTerminate(): Buffer {
  return new MessageWriter(F.Terminate, 0).done();
}
