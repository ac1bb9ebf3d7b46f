/**
 * The relay's own login to a target PostgreSQL server: TCP, TLS as sslmode says, StartupMessage,
 * authentication with credentials only the relay holds, then the server's status up to the first
 * ReadyForQuery. The engine gets the socket at that point and proxies a client over it.
 *
 * Failures are VigilErrors: target_unreachable (TCP, TLS, timeout, the server hanging up),
 * target_refused (an ErrorResponse, with its SQLSTATE as nativeCode), protocol_error (not PostgreSQL).
 * A refusal of the relay's credentials (28P01, 28000) becomes one fixed message under SQLSTATE 08004,
 * so the client learns neither the target user name nor anything about the password; the target's
 * own error is kept as `cause`, for the relay's log only. No message carries a password.
 */
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { DatabaseError } from "pg-protocol/dist/messages.js";
import { formatHostPort, parseHostPort } from "../../../../lib/address.js";
import { VigilError } from "../../../../lib/errors.js";
import { serializeCancelRequest, serializeStartup } from "../../../../lib/pgwire/frontend.js";
import type { PostgresCredentials } from "./credentials.js";
import { RELAY_LOGIN_REJECTED, TargetAuthenticator } from "./target-auth.js";
import { secureChannel } from "./target-tls.js";
import { BackendReader, decodeLoginMessage, protocolError } from "./target-wire.js";

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** invalid_password, invalid_authorization_specification (no pg_hba entry, unknown role). */
const CREDENTIALS_REFUSED = new Set(["28P01", "28000"]);

export interface TargetConnection {
  /** net.Socket or tls.TLSSocket, paused and without our listeners: a 'data' listener, resume() or pipe() starts it. */
  socket: Duplex;
  /** ParameterStatus values the server sent (server_version, client_encoding, ...). */
  parameters: Record<string, string>;
  /** For cancelTarget; pid 0 and an empty secret if the server sent no BackendKeyData. */
  backendKey: { pid: number; secret: Buffer };
  transactionStatus: "I" | "T" | "E";
  /** Bytes read past the first ReadyForQuery (normally none); they belong in front of the socket's data. */
  leftover: Buffer;
  tls: boolean;
}

export interface ConnectTargetOptions {
  /** host:port of the target. */
  address: string;
  credentials: PostgresCredentials;
  database: string;
  /** Further startup parameters from the client (application_name, DateStyle, options, ...), already filtered. */
  params?: Record<string, string>;
  /** For the whole login, TLS and authentication included. */
  connectTimeoutMs?: number;
}

export async function connectTarget(opts: ConnectTargetOptions): Promise<TargetConnection> {
  const { host } = parseHostPort(opts.address);
  return withTarget(opts.address, opts.connectTimeoutMs, async (socket) => {
    const { stream, tls } = await secureChannel(socket, host, opts.credentials);
    const reader = new BackendReader(stream);
    // The relay's user and database win over any the client passed.
    const params = { ...opts.params, user: opts.credentials.user, database: opts.database };
    // A NUL would end a string early and let the rest pose as further parameters.
    if (Object.entries(params).some(([k, v]) => k.includes("\0") || v.includes("\0"))) {
      throw new VigilError("bad_request", "a startup parameter contains a NUL byte");
    }
    stream.write(serializeStartup(params));
    const auth = new TargetAuthenticator({ stream, credentials: opts.credentials, host, tls });
    const parameters: Record<string, string> = {};
    let backendKey: TargetConnection["backendKey"] = { pid: 0, secret: Buffer.alloc(0) };
    for (;;) {
      const message = decodeLoginMessage(await reader.message());
      switch (message.kind) {
        case "parameterStatus":
          parameters[message.name] = message.value;
          break;
        case "backendKey":
          backendKey = { pid: message.pid, secret: message.secret };
          break;
        case "notice":
          // Login notices (e.g. a password about to expire) are the target operator's business.
          break;
        case "error":
          throw refusal(message.error);
        case "ready":
          if (!auth.done) throw protocolError("ReadyForQuery before authentication completed");
          return {
            socket: stream,
            parameters,
            backendKey,
            transactionStatus: message.status,
            leftover: reader.release(),
            tls,
          };
        default:
          await auth.answer(message);
      }
    }
  });
}

export interface CancelTargetOptions {
  address: string;
  credentials: PostgresCredentials;
  backendKey: { pid: number; secret: Buffer };
  connectTimeoutMs?: number;
}

/**
 * Asks the target to cancel the query running on the connection with `backendKey`, over a new
 * connection (TLS when sslmode demands it: the server accepts a CancelRequest after SSLRequest).
 * Resolves once the server has closed that connection, which it does after reading the request.
 * PostgreSQL never answers a CancelRequest, so whether a query was cancelled shows on the session itself.
 */
export async function cancelTarget(opts: CancelTargetOptions): Promise<void> {
  if (opts.backendKey.secret.length === 0) return; // the server sent no key: nothing can be cancelled
  const { host } = parseHostPort(opts.address);
  // prefer would only add a round trip: a cancel key is not worth protecting when the session is plain.
  const credentials =
    opts.credentials.sslmode === "prefer" ? { ...opts.credentials, sslmode: "disable" as const } : opts.credentials;
  await withTarget(opts.address, opts.connectTimeoutMs, async (socket) => {
    const { stream } = await secureChannel(socket, host, credentials);
    const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
    stream.on("error", () => undefined); // the server may reset instead of closing; either way it is done
    stream.resume(); // the server sends nothing, but "close" needs the end of the stream read
    stream.end(serializeCancelRequest(opts.backendKey.pid, opts.backendKey.secret));
    await closed;
  });
}

/**
 * Dials the target and runs `use` on the socket within the timeout, mapping every failure to a
 * VigilError and destroying the socket unless `use` succeeded.
 */
async function withTarget<T>(
  address: string,
  timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
  use: (socket: Socket) => Promise<T>,
): Promise<T> {
  const { host, port } = parseHostPort(address);
  const where = formatHostPort({ host, port });
  const socket = connect({ host, port, noDelay: true, keepAlive: true });
  let timedOut = false;
  // Destroying the TCP socket also ends a TLS socket over it, failing whatever step is waiting.
  const timer = setTimeout(() => {
    timedOut = true;
    socket.destroy();
  }, timeoutMs);
  try {
    await connected(socket);
    const result = await use(socket);
    // A cancel resolves when its socket closes, and a timeout closes it too.
    if (timedOut) throw new Error("timed out");
    return result;
  } catch (error) {
    socket.destroy();
    if (timedOut) throw new VigilError("target_unreachable", `cannot reach ${where}: no answer within ${timeoutMs} ms`);
    if (error instanceof VigilError) throw error;
    throw new VigilError("target_unreachable", `cannot reach ${where}: ${(error as Error).message}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

function connected(socket: Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error): void => {
      socket.off("connect", onConnect).off("error", onError).off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onConnect = (): void => settle();
    const onError = (error: Error): void => settle(error);
    const onClose = (): void => settle(new Error("the connection closed before it was established"));
    socket.once("connect", onConnect).once("error", onError).once("close", onClose);
  });
}

function refusal(error: DatabaseError): VigilError {
  if (error.code !== undefined && CREDENTIALS_REFUSED.has(error.code)) {
    return new VigilError("target_refused", "the target refused the relay's credentials for this connection", {
      nativeCode: RELAY_LOGIN_REJECTED,
      cause: error,
    });
  }
  return new VigilError("target_refused", error.message || "the target refused the connection", {
    nativeCode: error.code,
  });
}
