import { randomBytes, randomInt } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { TLSSocket, type SecureContext } from "node:tls";
import { formatHostPort, isLoopback, parseHostPort } from "../../../lib/address.js";
import { VigilError, type VigilErrorCode } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  sslResponse,
  type ErrorFields,
} from "../../../lib/pgwire/backend.js";
import { PgProtocolError } from "../../../lib/pgwire/errors.js";
import { FrontendReader, readStartupPacket, type StartupPacket } from "../../../lib/pgwire/frontend.js";
import { FrameDuplex } from "../../../lib/tunnel/frame-duplex.js";
import type { Authenticator } from "../identity/identity.js";
import type { OpenedSession, SessionRouter } from "../tunnels/sessions.js";

export interface PostgresFrontDoorDeps {
  auth: Authenticator;
  sessions: SessionRouter;
  /** Undefined only when TLS could not be set up: then only allowPlaintext clients get in. */
  tls: SecureContext | undefined;
  /** Accept the token in plaintext from loopback clients that did not ask for TLS. */
  allowPlaintext: boolean;
  /**
   * The other hubs, when there are any: a CancelRequest may reach a hub other than the one that
   * opened its session (a load balancer in front of several), so unknown keys are passed on.
   */
  peers?: CancelPeers;
  /** Time a client has to finish the startup handshake. */
  handshakeTimeoutMs: number;
  log: Logger;
}

export interface CancelPeers {
  publish(key: string): void;
  subscribe(onKey: (key: string) => void): void;
}

export interface PostgresFrontDoor {
  address: string;
  close(): Promise<void>;
}

/** Startup parameters passed on to the target; everything else (user, database, replication…) is ours. */
const PASSED_PARAMS = new Set([
  "application_name",
  "client_encoding",
  "DateStyle",
  "TimeZone",
  "IntervalStyle",
  "extra_float_digits",
  "search_path",
  "options",
  "datestyle",
  "timezone",
  "intervalstyle",
]);

/** Where a Vigil failure lands in PostgreSQL's SQLSTATE space. */
const SQLSTATE: Partial<Record<VigilErrorCode, string>> = {
  bad_token: "28P01",
  forbidden: "28000",
  unknown_connection: "3D000",
  relay_unavailable: "08001",
  relay_lost: "08001",
  relay_draining: "08001",
  tunnel_timeout: "08001",
  target_unreachable: "08001",
  target_refused: "08001",
  recording_unavailable: "58030",
  hub_unavailable: "08001",
  protocol_error: "08P01",
  bad_request: "08P01",
};

/**
 * The postgres front door: plain `psql "host=HUB port=15432 user=<connection> dbname=<db>
 * password=<token> sslmode=require"`. The hub answers SSLRequest with TLS, asks for a cleartext
 * password (the token, safe inside TLS), checks identity and the connect grant, and opens a tunnel
 * to a relay, whose postgres engine logs in to the target and speaks for it from then on. The hub
 * owns the BackendKeyData it hands out, so a CancelRequest (a new connection) finds its session.
 */
export async function startPostgresFrontDoor(listen: string, deps: PostgresFrontDoorDeps): Promise<PostgresFrontDoor> {
  const cancelKeys = new Map<string, OpenedSession>();
  /** Route a cancel key to the relay of its session: here, or (once) through the other hubs. */
  const cancel: CancelRoute = (key, log, fromPeer = false) => {
    const session = cancelKeys.get(key);
    if (session) {
      session.relay.send?.({ msg: { $case: "cancelSession", value: { sessionId: session.id } } });
      log.info({ session: session.id, fromPeer }, "cancel request forwarded to the relay");
    } else if (!fromPeer && deps.peers) {
      deps.peers.publish(key);
      log.info("cancel request for no session of this hub: passed to the other hubs");
    } else if (!fromPeer) {
      log.info("cancel request for no known session");
    }
  };
  deps.peers?.subscribe((key) => cancel(key, deps.log, true));
  const sockets = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    void serveClient(socket, deps, cancelKeys, cancel);
  });
  const { host, port } = parseHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => (server.off("error", reject), resolve()));
  });
  const bound = server.address();
  const address = formatHostPort({ host, port: typeof bound === "object" && bound ? bound.port : port });
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

type CancelRoute = (key: string, log: Logger, fromPeer?: boolean) => void;

async function serveClient(
  raw: Socket,
  deps: PostgresFrontDoorDeps,
  cancelKeys: Map<string, OpenedSession>,
  cancel: CancelRoute,
) {
  const peer = `${raw.remoteAddress}:${raw.remotePort}`;
  let log = deps.log.child({ peer, door: "postgres" });
  let socket: Socket = raw;
  let reader = new StartupReader(socket);
  const timer = setTimeout(() => raw.destroy(), deps.handshakeTimeoutMs);
  raw.on("error", () => {}); // a client that vanishes mid-handshake is not an error of ours
  try {
    let packet = await reader.startup();
    // SSLRequest and GSSENCRequest come first and at most once each; then the real startup packet.
    for (let i = 0; i < 2 && packet.type !== "startup" && packet.type !== "cancel"; i++) {
      if (packet.type === "gssenc") {
        raw.write(sslResponse(false));
      } else if (socket !== raw) {
        throw new PgProtocolError("08P01", "SSLRequest after TLS was established");
      } else if (deps.tls) {
        // Bytes after the SSLRequest, before the handshake, would be plaintext smuggled into the session.
        if (reader.buffered > 0) throw new PgProtocolError("08P01", "unexpected data after SSLRequest");
        raw.write(sslResponse(true));
        reader.detach();
        socket = await startTls(raw, deps.tls);
        reader = new StartupReader(socket);
      } else {
        raw.write(sslResponse(false));
      }
      packet = await reader.startup();
    }
    if (packet.type === "cancel") {
      clearTimeout(timer);
      cancel(cancelKey(packet.pid, packet.secret), log);
      // The client waits for the close (as PostgreSQL's postmaster does it) before it goes on.
      socket.end();
      return;
    }
    if (packet.type !== "startup") throw new PgProtocolError("08P01", "expected a startup packet");
    if (packet.major !== 3) {
      throw new PgProtocolError("0A000", `unsupported frontend protocol ${packet.major}.${packet.minor}`);
    }
    const unknownOptions = Object.keys(packet.params).filter((k) => k.startsWith("_pq_."));
    if (packet.minor > 0 || unknownOptions.length > 0) socket.write(negotiateProtocolVersion(0, unknownOptions));

    const connection = packet.params.user;
    if (!connection) throw new VigilError("unknown_connection", "set user=<connection name> to choose the connection");
    const database = packet.params.database ?? "";
    log = log.child({ connection, database });
    const encrypted = socket !== raw;
    if (!encrypted && !(deps.allowPlaintext && isLoopback(raw.remoteAddress ?? ""))) {
      throw new VigilError("forbidden", "Vigil accepts tokens only over TLS: connect with sslmode=require");
    }

    socket.write(authenticationCleartextPassword());
    const token = await reader.password();
    const identity = await deps.auth.verify(token);
    log = log.child({ user: identity.subject });
    const params: Record<string, string> = { database };
    for (const [k, v] of Object.entries(packet.params)) if (PASSED_PARAMS.has(k)) params[k] = v as string;
    const session = await deps.sessions.open(identity, connection, peer, params);
    clearTimeout(timer);
    log = log.child({ session: session.id, relay: session.relay.id });

    const pid = randomInt(1, 2 ** 31 - 1);
    const secret = randomBytes(4);
    const key = cancelKey(pid, secret);
    cancelKeys.set(key, session);
    // The relay sends ParameterStatus and ReadyForQuery once its engine serves the tunnel.
    socket.write(Buffer.concat([authenticationOk(), backendKeyData(pid, secret)]));
    log.info({ tls: encrypted }, "session started");

    const tunnel = new FrameDuplex(session.tunnel, { lostCode: "relay_lost", peer: `relay ${session.relay.id}` });
    const early = reader.detach();
    if (early.length > 0) tunnel.write(early);
    const error = await splice(socket, tunnel);
    cancelKeys.delete(key);
    session.release();
    if (error) log.info({ err: error.message }, "session ended with an error");
    else log.info("session ended");
  } catch (err) {
    clearTimeout(timer);
    const fields = fatal(err);
    if (!(err instanceof VigilError || err instanceof PgProtocolError))
      log.error({ err }, "postgres front door failed");
    else log.info({ sqlstate: fields.code, reason: fields.message }, "postgres session refused");
    if (!socket.destroyed) socket.end(errorResponse(fields));
  }
}

/**
 * Carry bytes both ways until the session ends. Not `pipeline`: when the relay side fails, the client
 * must still get a FATAL ErrorResponse in its own protocol before the connection closes.
 */
function splice(socket: Socket, tunnel: FrameDuplex): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let error: Error | undefined;
    socket.pipe(tunnel);
    tunnel.pipe(socket);
    tunnel.on("error", (err) => {
      error ??= err;
      tunnel.unpipe(socket);
      if (!socket.destroyed) socket.end(errorResponse(fatal(err)));
    });
    socket.on("error", (err) => {
      error ??= err;
      tunnel.destroy(new VigilError("client_gone", `client connection lost: ${err.message}`));
    });
    socket.once("close", () => {
      if (!tunnel.destroyed && !tunnel.writableFinished)
        tunnel.destroy(new VigilError("client_gone", "client went away"));
      resolve(error);
    });
  });
}

function fatal(err: unknown): ErrorFields {
  if (err instanceof PgProtocolError) return { severity: "FATAL", code: err.sqlstate, message: err.message };
  if (err instanceof VigilError) {
    return { severity: "FATAL", code: err.nativeCode ?? SQLSTATE[err.code] ?? "XX000", message: err.message };
  }
  return { severity: "FATAL", code: "XX000", message: "internal error in the Vigil hub" };
}

const cancelKey = (pid: number, secret: Buffer) => `${pid}:${secret.toString("hex")}`;

function startTls(socket: Socket, secureContext: SecureContext): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tls = new TLSSocket(socket, { isServer: true, secureContext });
    tls.once("secure", () => (tls.off("error", reject), resolve(tls)));
    tls.once("error", reject);
  });
}

/** Reads the handshake (startup packets, then the password message) and keeps what follows. */
class StartupReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private failed: Error | undefined;

  constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.waiting?.();
    });
    const end = () => {
      this.failed ??= new VigilError("client_gone", "client closed the connection during the handshake");
      this.waiting?.();
    };
    socket.once("end", end);
    socket.once("close", end);
  }

  get buffered(): number {
    return this.buf.length;
  }

  async startup(): Promise<StartupPacket> {
    for (;;) {
      const got = readStartupPacket(this.buf);
      if (got) {
        this.buf = this.buf.subarray(got.length);
        return got.packet;
      }
      await this.more();
    }
  }

  /** The PasswordMessage: a NUL-terminated string (the token). */
  async password(): Promise<string> {
    for (;;) {
      const frames = new FrontendReader();
      frames.push(this.buf);
      const got = frames.next();
      if (got) {
        this.buf = this.buf.subarray(got.raw.length);
        if (got.msg.type !== "password") throw new PgProtocolError("08P01", `expected a password message`);
        const data = got.msg.data;
        const end = data.indexOf(0);
        if (end !== data.length - 1) throw new PgProtocolError("08P01", "malformed password message");
        return data.subarray(0, end).toString("utf8");
      }
      await this.more();
    }
  }

  /** Stop reading (TLS or the session takes over the socket) and return what was read past the handshake. */
  detach(): Buffer {
    this.socket.removeAllListeners("data");
    this.socket.pause();
    return this.buf;
  }

  private more(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.waiting = () => {
        this.waiting = undefined;
        if (this.failed) reject(this.failed);
        else resolve();
      };
    });
  }
}
