import { createServer, type Socket } from "node:net";
import ssh2 from "ssh2";
import type { AuthContext, Connection, ServerChannel, TcpipRequestInfo } from "ssh2";
import { formatHostPort, parseHostPort } from "../../../../lib/address.js";
import { VigilError } from "../../../../lib/errors.js";
import type { Logger } from "../../../../lib/log.js";
import { batchWritesPerTick } from "../../../../lib/ssh/batch-writes.js";
import { SSH_SERVER_CIPHERS } from "../../../../lib/ssh/ciphers.js";
import type { SshHostKey } from "../../../../lib/ssh/host-key.js";
import { FrameDuplex } from "../../../../lib/tunnel/frame-duplex.js";
import type { Authenticator, Identity } from "../../identity/identity.js";
import type { RelayRegistry } from "../../relays/registry.js";
import { keyExpired, keyId, type SshKeyStore } from "../../ssh-keys/store.js";
import type { SessionRouter } from "../../tunnels/sessions.js";
import { refuseChannel, sendAuthBanner } from "./ssh2-messages.js";

const { Server } = ssh2;

export interface SshJumpHostDeps {
  auth: Authenticator;
  sessions: SessionRouter;
  registry: RelayRegistry;
  keys: SshKeyStore;
  hostKey: SshHostKey;
  log: Logger;
}

export interface SshJumpHost {
  address: string;
  close(): Promise<void>;
}

/** How the caller logged in to the jump host, as the session's parameters record it. */
type LoginMethod = "password" | "keyboard-interactive" | "publickey";

/**
 * The SSH front door: a jump host for plain OpenSSH (`ssh -J gw@HUB:2222 deploy@web-1`). It
 * authenticates the caller (a token as password or at a keyboard-interactive prompt, or a public key
 * registered to an identity), then accepts only `direct-tcpip` channels to connections the caller
 * may reach, each carried through a tunnel to a relay whose ssh engine is the SSH server the client
 * then talks to. No shell, no other channel: the jump host only forwards.
 */
export async function startSshJumpHost(listen: string, deps: SshJumpHostDeps): Promise<SshJumpHost> {
  const ssh = new Server(
    { hostKeys: [deps.hostKey.privateKey], algorithms: { cipher: SSH_SERVER_CIPHERS }, ident: "Vigil" },
    (conn, info) => serveClient(conn, `${info.ip}:${info.port}`, deps),
  );
  // Our own listener, to turn Nagle off: a keystroke's echo must not wait for the next packet.
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    ssh.injectSocket(batchWritesPerTick(socket));
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

function serveClient(conn: Connection, peer: string, deps: SshJumpHostDeps): void {
  let log = deps.log.child({ peer, door: "ssh" });
  let identity: Identity | undefined;
  let method: LoginMethod | undefined;
  let jumpUser = "";
  let keyBannerSent = false;

  const refuse = (auth: AuthContext, message: string) => {
    log.info({ method: auth.method, reason: message }, "ssh login refused");
    sendAuthBanner(auth, `vigil: ${message}`);
    auth.reject();
  };
  const verified = (auth: AuthContext, who: Identity) => {
    identity = who;
    method = auth.method as LoginMethod;
    jumpUser = auth.username;
    log = log.child({ user: who.subject });
    log.info({ method }, "ssh login");
    auth.accept();
  };
  const checkToken = async (auth: AuthContext, token: string) => {
    try {
      verified(auth, await deps.auth.verify(token));
    } catch (err) {
      refuse(auth, err instanceof VigilError ? `token refused: ${err.message}` : "token refused");
    }
  };

  conn.on("authentication", (auth) => {
    switch (auth.method) {
      case "password":
        return void checkToken(auth, auth.password);
      case "keyboard-interactive":
        return auth.prompt(
          [{ prompt: "Password (a Vigil token): ", echo: false }],
          "Vigil",
          "Paste a Vigil token (vigil login, or vigil token create).",
          (answers) => void checkToken(auth, answers[0] ?? ""),
        );
      case "publickey": {
        const registered = deps.keys.get(keyId(auth.key.data).id);
        if (!registered) {
          // Said once: the client goes on to its other keys and methods.
          if (!keyBannerSent) {
            keyBannerSent = true;
            sendAuthBanner(
              auth,
              `vigil: key ${keyId(auth.key.data).fingerprint} is not registered to any identity (vigil ssh-key add)`,
            );
          }
          log.info({ fingerprint: keyId(auth.key.data).fingerprint }, "ssh key not registered");
          return auth.reject();
        }
        if (keyExpired(registered)) {
          if (!keyBannerSent) {
            keyBannerSent = true;
            sendAuthBanner(
              auth,
              `vigil: key ${registered.fingerprint} expired at ${registered.expiresAt} (register it again: vigil ssh-key add)`,
            );
          }
          log.info({ fingerprint: registered.fingerprint, subject: registered.subject }, "ssh key expired");
          return auth.reject();
        }
        // Without a signature the client only asks whether the key would do; with one, it proves it.
        if (!auth.signature) return auth.accept();
        const key = ssh2.utils.parseKey(registered.publicKey);
        if (key instanceof Error || !auth.blob || key.verify(auth.blob, auth.signature, auth.hashAlgo) !== true) {
          return refuse(auth, "public key signature did not verify");
        }
        return verified(auth, { subject: registered.subject, groups: registered.groups, issuer: registered.issuer });
      }
      default:
        return auth.reject(["publickey", "keyboard-interactive", "password"]);
    }
  });

  // The jump host runs nothing itself: no shell, exec or subsystem, no other channel types.
  conn.on("session", (_accept, reject) =>
    refuseChannel(conn, reject, "the Vigil jump host runs no shell: ssh -J <this host> <user>@<connection>"),
  );
  conn.on("request", (_accept, reject, name) => {
    log.info({ request: name }, "global request refused");
    reject?.();
  });
  conn.on("tcpip", (accept, reject, info) => {
    if (!identity) return reject();
    void forward(conn, accept, reject, info, identity, { jump_user: jumpUser, login: method ?? "" }, deps, log);
  });
  conn.on("error", (err) => log.info({ err: err.message }, "ssh client connection error"));
}

/** One `direct-tcpip` channel: `web-1:22` → a session on connection `web-1`, spliced to its tunnel. */
async function forward(
  conn: Connection,
  accept: () => ServerChannel,
  reject: () => void,
  info: TcpipRequestInfo,
  identity: Identity,
  params: Record<string, string>,
  deps: SshJumpHostDeps,
  parent: Logger,
): Promise<void> {
  const connection = info.destIP;
  const log = parent.child({ connection });
  const known = deps.registry.connections().find((c) => c.name === connection);
  if (known && known.type !== "ssh") {
    log.info({ type: known.type }, "ssh forward refused: not an ssh connection");
    return refuseChannel(conn, reject, `connection "${connection}" is a ${known.type} connection, not ssh`);
  }
  let session;
  try {
    session = await deps.sessions.open(identity, connection, `${info.srcIP}:${info.srcPort}`, {
      ...params,
      destination: `${info.destIP}:${info.destPort}`,
    });
  } catch (err) {
    const message = err instanceof VigilError ? err.message : "internal error in the Vigil hub";
    if (!(err instanceof VigilError)) log.error({ err }, "ssh forward failed");
    else log.info({ code: err.code, reason: err.message }, "ssh forward refused");
    return refuseChannel(conn, reject, `vigil: ${message}`);
  }
  const channel = accept();
  const tunnel = new FrameDuplex(session.tunnel, { lostCode: "relay_lost", peer: `relay ${session.relay.id}` });
  log.info({ session: session.id, relay: session.relay.id }, "ssh session started");
  channel.pipe(tunnel);
  tunnel.pipe(channel);
  tunnel.on("error", (err) => {
    log.info({ session: session.id, err: err.message }, "ssh session ended with an error");
    channel.close();
  });
  channel.on("close", () => {
    if (!tunnel.destroyed && !tunnel.writableFinished)
      tunnel.destroy(new VigilError("client_gone", "client went away"));
    session.release();
    log.info({ session: session.id }, "ssh session ended");
  });
}
