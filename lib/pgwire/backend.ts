import { MessageWriter, cstringLength } from "./message-writer.js";

export {
  BackendReader,
  dataRowRun,
  type DataRowRun,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeDataRow,
  decodeErrorFields,
  decodeNotificationResponse,
  decodeParameterStatus,
  decodeReadyForQuery,
  decodeRowDescription,
} from "./backend-reader.js";

/** Type bytes of the messages a server sends. */
export const B = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;

export type Severity = "ERROR" | "FATAL" | "PANIC" | "WARNING" | "NOTICE" | "DEBUG" | "INFO" | "LOG";

/** The ErrorResponse/NoticeResponse fields Vigil originates. */
export interface ErrorFields {
  severity?: Severity;
  /** SQLSTATE. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  /** 1-based character offset into the query text. */
  position?: number;
}

/** One column of a RowDescription. OIDs are unsigned; `typeSize` is negative for variable width. */
export interface RowField {
  name: string;
  tableOid: number;
  column: number;
  typeOid: number;
  typeSize: number;
  typeMod: number;
  format: 0 | 1;
}

/** Severity defaults to ERROR. */
export function errorResponse(f: ErrorFields): Buffer {
  return fieldsMessage(B.ErrorResponse, f, "ERROR");
}

/** Severity defaults to NOTICE. */
export function noticeResponse(f: ErrorFields): Buffer {
  return fieldsMessage(B.NoticeResponse, f, "NOTICE");
}

/**
 * S and V both carry the severity, as PostgreSQL sends them (V is never localized). Text often
 * quotes client input, and an error path must not throw, so a NUL becomes U+FFFD instead of
 * being refused.
 */
function fieldsMessage(code: number, f: ErrorFields, defaultSeverity: Severity): Buffer {
  const severity = f.severity ?? defaultSeverity;
  const fields: [number, string][] = [
    [0x53, severity], // S
    [0x56, severity], // V
    [0x43, f.code], // C
    [0x4d, f.message], // M
  ];
  if (f.detail !== undefined) fields.push([0x44, f.detail]); // D
  if (f.hint !== undefined) fields.push([0x48, f.hint]); // H
  if (f.position !== undefined) fields.push([0x50, String(f.position)]); // P
  let length = 1;
  for (const field of fields) {
    field[1] = field[1].replaceAll("\0", "\uFFFD");
    length += 1 + cstringLength(field[1], "error field");
  }
  const w = new MessageWriter(code, length);
  for (const [type, value] of fields) w.byte(type).cstring(value);
  return w.byte(0).done();
}

export function authenticationOk(): Buffer {
  return new MessageWriter(B.Authentication, 4).int32(0).done();
}

export function authenticationCleartextPassword(): Buffer {
  return new MessageWriter(B.Authentication, 4).int32(3).done();
}

export function parameterStatus(name: string, value: string): Buffer {
  const length = cstringLength(name, "parameter name") + cstringLength(value, `parameter ${name}`);
  return new MessageWriter(B.ParameterStatus, length).cstring(name).cstring(value).done();
}

/** `secret` is 4 bytes for protocol 3.0 clients, 4 to 256 for 3.2; the caller picks by version. */
export function backendKeyData(pid: number, secret: Buffer): Buffer {
  if (secret.length < 4 || secret.length > 256) {
    throw new RangeError(`cancel key of ${secret.length} bytes, expected 4 to 256`);
  }
  return new MessageWriter(B.BackendKeyData, 4 + secret.length).int32(pid).bytes(secret).done();
}

export function readyForQuery(status: "I" | "T" | "E"): Buffer {
  return new MessageWriter(B.ReadyForQuery, 1).byte(status.charCodeAt(0)).done();
}

/** `minor`: the newest minor version we speak of the requested major; `unrecognized`: `_pq_.` options we ignored. */
export function negotiateProtocolVersion(minor: number, unrecognized: string[]): Buffer {
  let length = 8;
  for (const option of unrecognized) length += cstringLength(option, "protocol option");
  const w = new MessageWriter(B.NegotiateProtocolVersion, length).int32(minor).int32(unrecognized.length);
  for (const option of unrecognized) w.cstring(option);
  return w.done();
}

export function commandComplete(tag: string): Buffer {
  return new MessageWriter(B.CommandComplete, cstringLength(tag, "command tag")).cstring(tag).done();
}

export function emptyQueryResponse(): Buffer {
  return new MessageWriter(B.EmptyQueryResponse, 0).done();
}

export function parseComplete(): Buffer {
  return new MessageWriter(B.ParseComplete, 0).done();
}

export function bindComplete(): Buffer {
  return new MessageWriter(B.BindComplete, 0).done();
}

export function closeComplete(): Buffer {
  return new MessageWriter(B.CloseComplete, 0).done();
}

export function noData(): Buffer {
  return new MessageWriter(B.NoData, 0).done();
}

export function portalSuspended(): Buffer {
  return new MessageWriter(B.PortalSuspended, 0).done();
}

export function rowDescription(fields: RowField[]): Buffer {
  checkCount(fields.length, "row description fields");
  let length = 2;
  for (const field of fields) length += cstringLength(field.name, "field name") + 18;
  const w = new MessageWriter(B.RowDescription, length).uint16(fields.length);
  for (const f of fields) {
    w.cstring(f.name).uint32(f.tableOid).int16(f.column).uint32(f.typeOid).int16(f.typeSize).int32(f.typeMod);
    w.int16(f.format);
  }
  return w.done();
}

/** Values are copied once into the message; null is SQL NULL. */
export function dataRow(values: (Buffer | null)[]): Buffer {
  checkCount(values.length, "data row values");
  let length = 2;
  for (const value of values) length += 4 + (value?.length ?? 0);
  const w = new MessageWriter(B.DataRow, length).uint16(values.length);
  for (const value of values) {
    if (value === null) w.int32(-1);
    else w.int32(value.length).bytes(value);
  }
  return w.done();
}

/** The one-byte answer to SSLRequest (and GSSENCRequest): not a framed message. */
export function sslResponse(accept: boolean): Buffer {
  return Buffer.from([accept ? 0x53 : 0x4e]);
}

function checkCount(count: number, what: string): void {
  if (count > 0xffff) throw new RangeError(`${count} ${what}, the protocol allows 65535`);
}
