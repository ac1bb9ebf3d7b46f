/**
 * The wire during a relay's login to a target: whole backend messages framed by hand (so bytes past
 * the last one read stay with the caller), decoded by pg-protocol's Parser into a narrow union. The
 * StartupMessage and CancelRequest come from lib/pgwire: pg-protocol's serializer appends
 * client_encoding=UTF8 to the one and takes the other's secret as an int32.
 */
import type { Duplex } from "node:stream";
import { Parser } from "pg-protocol/dist/parser.js";
import type { BackendMessage, DatabaseError } from "pg-protocol/dist/messages.js";
import { VigilError } from "../../../../lib/errors.js";

const HEADER_BYTES = 5; // type byte + int32 length
/** Login messages are small; a bigger length means we are not talking to PostgreSQL. */
const MAX_LOGIN_MESSAGE_BYTES = 1 << 20;

/** Authentication request codes we look at before pg-protocol, whose Parser throws on the unsupported ones. */
const enum AuthCode {
  Ok = 0,
  KerberosV5 = 2,
  ScmCredential = 6,
  Gss = 7,
  GssContinue = 8,
  Sspi = 9,
}

const UNSUPPORTED_AUTH: Partial<Record<number, string>> = {
  [AuthCode.KerberosV5]: "Kerberos V5",
  [AuthCode.ScmCredential]: "SCM credential",
  [AuthCode.Gss]: "GSSAPI",
  [AuthCode.GssContinue]: "GSSAPI",
  [AuthCode.Sspi]: "SSPI",
};

export type LoginMessage =
  | { kind: "authOk" }
  | { kind: "authCleartext" }
  | { kind: "authMd5"; salt: Buffer }
  | { kind: "authSasl"; mechanisms: string[] }
  | { kind: "authSaslContinue"; data: string }
  | { kind: "authSaslFinal"; data: string }
  | { kind: "authUnsupported"; method: string }
  | { kind: "parameterStatus"; name: string; value: string }
  | { kind: "backendKey"; pid: number; secret: Buffer }
  | { kind: "notice" }
  | { kind: "error"; error: DatabaseError }
  | { kind: "ready"; status: "I" | "T" | "E" };

export function protocolError(detail: string): VigilError {
  return new VigilError("protocol_error", `the target broke the PostgreSQL protocol: ${detail}`);
}

/**
 * Collects bytes from a socket and hands out whole messages. Socket errors, the end of the stream and
 * a destroy() all reject the pending read; `release` detaches and returns what was not consumed.
 * It reads in paused mode ('readable' + read()): once its listener is gone the stream is back in its
 * initial state, so the next owner's first 'data' listener, resume() or pipe() starts the flow.
 */
export class BackendReader {
  private buffered: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly socket: Duplex) {
    socket.on("readable", this.onReadable);
    socket.on("error", this.onError);
    socket.on("end", this.onClosed);
    socket.on("close", this.onClosed);
  }

  /** Bytes received and not read yet. */
  get pending(): number {
    return this.buffered.length;
  }

  async byte(): Promise<number> {
    await this.fill(1);
    return this.take(1)[0]!;
  }

  /** The next whole backend message: type byte, int32 length and body. */
  async message(): Promise<Buffer> {
    await this.fill(HEADER_BYTES);
    const length = this.buffered.readUInt32BE(1);
    if (length < 4 || length > MAX_LOGIN_MESSAGE_BYTES) {
      throw protocolError(`message '${String.fromCharCode(this.buffered[0]!)}' claims ${length} bytes`);
    }
    await this.fill(1 + length);
    return this.take(1 + length);
  }

  /** Stops reading (the socket is left paused, without our listeners) and returns the unread bytes. */
  release(): Buffer {
    this.socket.off("readable", this.onReadable);
    this.socket.off("error", this.onError);
    this.socket.off("end", this.onClosed);
    this.socket.off("close", this.onClosed);
    return this.take(this.buffered.length);
  }

  private async fill(bytes: number): Promise<void> {
    while (this.buffered.length < bytes) {
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private take(bytes: number): Buffer {
    const head = this.buffered.subarray(0, bytes);
    this.buffered = this.buffered.subarray(bytes);
    return head;
  }

  private readonly onReadable = (): void => {
    let chunk: Buffer | null;
    while ((chunk = this.socket.read() as Buffer | null) !== null) {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    }
    this.notify();
  };

  private readonly onError = (error: Error): void => {
    this.failure ??= error;
    this.notify();
  };

  private readonly onClosed = (): void => {
    this.failure ??= new Error("the server closed the connection during login");
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Decodes one whole login-phase message. */
export function decodeLoginMessage(frame: Buffer): LoginMessage {
  const type = String.fromCharCode(frame[0]!);
  if (type === "R") {
    const code = frame.length >= 9 ? frame.readInt32BE(5) : -1;
    const unsupported = UNSUPPORTED_AUTH[code];
    if (unsupported) return { kind: "authUnsupported", method: unsupported };
  }
  if (type === "K") {
    // pg-protocol reads the secret as an int32; keep the raw bytes (protocol 3.2 makes it longer).
    if (frame.length < 13) throw protocolError("BackendKeyData is too short");
    return { kind: "backendKey", pid: frame.readInt32BE(5), secret: Buffer.from(frame.subarray(9)) };
  }
  const message = parseOne(frame);
  // pg-protocol's declared types omit the fields of the authentication and status messages.
  const fields = message as BackendMessage & Record<string, unknown>;
  switch (message.name) {
    case "authenticationOk":
      // pg-protocol also names malformed cleartext and MD5 requests "authenticationOk".
      if (frame.length !== 9 || frame.readInt32BE(5) !== AuthCode.Ok) throw protocolError("bad Authentication message");
      return { kind: "authOk" };
    case "authenticationCleartextPassword":
      return { kind: "authCleartext" };
    case "authenticationMD5Password":
      return { kind: "authMd5", salt: fields.salt as Buffer };
    case "authenticationSASL":
      return { kind: "authSasl", mechanisms: fields.mechanisms as string[] };
    case "authenticationSASLContinue":
      return { kind: "authSaslContinue", data: fields.data as string };
    case "authenticationSASLFinal":
      return { kind: "authSaslFinal", data: fields.data as string };
    case "parameterStatus":
      return { kind: "parameterStatus", name: fields.parameterName as string, value: fields.parameterValue as string };
    case "notice":
      return { kind: "notice" };
    case "error":
      // pg-protocol also reports an unknown message type as an "error" without a SQLSTATE.
      if (type !== "E") throw protocolError(`unexpected message '${type}' during login`);
      return { kind: "error", error: message as DatabaseError };
    case "readyForQuery": {
      const status = fields.status;
      if (status !== "I" && status !== "T" && status !== "E") throw protocolError("bad ReadyForQuery status");
      return { kind: "ready", status };
    }
    default:
      throw protocolError(`unexpected message '${type}' during login`);
  }
}

function parseOne(frame: Buffer): BackendMessage {
  let decoded: BackendMessage | undefined;
  try {
    new Parser().parse(frame, (message) => (decoded = message));
  } catch (error) {
    throw protocolError(`cannot decode message '${String.fromCharCode(frame[0]!)}': ${(error as Error).message}`);
  }
  if (!decoded) throw protocolError("incomplete message");
  return decoded;
}
