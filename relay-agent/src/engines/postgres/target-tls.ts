/** The SSLRequest exchange and TLS handshake with a target, as the connection's sslmode asks. */
import { readFile } from "node:fs/promises";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from "node:tls";
import { serialize } from "pg-protocol";
import type { PostgresCredentials } from "./credentials.js";
import { BackendReader, protocolError } from "./target-wire.js";

export interface TargetChannel {
  /** The socket itself, or the TLS socket over it. */
  stream: Duplex;
  tls: boolean;
}

/**
 * disable: plain. prefer: TLS if the server agrees, unverified. require: TLS, unverified.
 * verify-ca: the chain must lead to sslrootcert (or a default root). verify-full: also the host name.
 * Errors other than VigilErrors mean the target could not be reached securely.
 */
export async function secureChannel(
  socket: Socket,
  host: string,
  credentials: PostgresCredentials,
): Promise<TargetChannel> {
  const { sslmode } = credentials;
  if (sslmode === "disable") return { stream: socket, tls: false };
  const reader = new BackendReader(socket);
  socket.write(serialize.requestSsl());
  const answer = String.fromCharCode(await reader.byte());
  // Bytes behind the answer were sent before encryption, possibly by someone in between (CVE-2021-23222).
  if (reader.pending > 0) throw protocolError("it sent data after its answer to SSLRequest, before TLS began");
  reader.release();
  if (answer === "N") {
    if (sslmode === "prefer") return { stream: socket, tls: false };
    throw new Error(`the server does not accept TLS, which sslmode ${sslmode} demands`);
  }
  if (answer !== "S") throw protocolError(`unexpected answer to SSLRequest (0x${answer.charCodeAt(0).toString(16)})`);
  return { stream: await handshake(socket, host, sslmode, credentials.sslrootcert), tls: true };
}

type TlsMode = Exclude<PostgresCredentials["sslmode"], "disable">;

async function tlsOptions(
  socket: Socket,
  host: string,
  mode: TlsMode,
  sslrootcert?: string,
): Promise<ConnectionOptions> {
  const options: ConnectionOptions = {
    socket,
    // What libpq sends since PostgreSQL 17; older servers ignore it.
    ALPNProtocols: ["postgresql"],
    // host is what checkServerIdentity matches; SNI must not carry an IP address (RFC 6066).
    host,
    ...(isIP(host) === 0 ? { servername: host } : {}),
  };
  if (mode === "prefer" || mode === "require") return { ...options, rejectUnauthorized: false };
  // Without sslrootcert, `ca` stays undefined: Node's default trust store.
  const ca = sslrootcert === undefined ? undefined : await readFile(sslrootcert);
  return mode === "verify-ca" ? { ...options, ca, checkServerIdentity: () => undefined } : { ...options, ca };
}

async function handshake(socket: Socket, host: string, mode: TlsMode, sslrootcert?: string): Promise<TLSSocket> {
  const tls = tlsConnect(await tlsOptions(socket, host, mode, sslrootcert));
  await new Promise<void>((resolve, reject) => {
    const settle = (error?: Error): void => {
      // Only ours: TLSSocket keeps internal listeners of its own.
      tls.off("secureConnect", onSecure).off("error", onError).off("close", onClose);
      if (error) reject(error);
      else resolve();
    };
    const onSecure = (): void => settle();
    const onError = (error: Error): void => settle(new Error(`TLS handshake failed: ${error.message}`));
    const onClose = (): void => settle(new Error("the server closed the connection during the TLS handshake"));
    tls.once("secureConnect", onSecure).once("error", onError).once("close", onClose);
  });
  return tls;
}
