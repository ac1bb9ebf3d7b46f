import { randomBytes, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";
import { formatHostPort, parseHostPort } from "../../lib/address.js";
import { dataDir } from "../../lib/config/load.js";
import type { Config } from "../../lib/config/schema.js";
import { ClientService, RelayService } from "../../lib/tunnel/services.js";
import { SERVER_OPTIONS, tuneServerTransport } from "../../lib/grpc-options.js";
import type { Logger } from "../../lib/log.js";
import { selfSignedCert } from "../../lib/tls/self-signed.js";
import { VERSION } from "../../lib/version.js";
import { buildApi, type Api } from "./api/app.js";
import { handleConnect } from "./client-service.js";
import { startPostgresFrontDoor, type CancelPeers, type PostgresFrontDoor } from "./frontdoors/postgres.js";
import { startSshJumpHost, type SshJumpHost } from "./frontdoors/ssh/jump-host.js";
import { loadOrCreateSshHostKey } from "../../lib/ssh/host-key.js";
import { NatsSshKeyStore } from "./ssh-keys/nats-store.js";
import { FileSshKeyStore, type SshKeyStore } from "./ssh-keys/store.js";
import { startIdentity } from "./identity/setup.js";
import { LocalTokens } from "./identity/local-tokens.js";
import { handleControl } from "./relays/control.js";
import { FileKeyPinStore, NatsKeyPinStore, type KeyPinStore } from "./relays/key-pins.js";
import { RelayRegistry } from "./relays/registry.js";
import { TunnelBroker, type TunnelCall } from "./tunnels/broker.js";
import { localCallPair } from "../../lib/tunnel/local-call.js";
import type { FrameCall } from "../../lib/tunnel/frames.js";
import { handleCommandApproval } from "./approvals/commands.js";
import { ApprovalService } from "./approvals/service.js";
import { NatsApprovalStore } from "./approvals/nats-store.js";
import { notifyWebhook } from "./approvals/notify.js";
import { FileApprovalStore, type ApprovalStore } from "./approvals/store.js";
import { PolicyStore } from "./policy/store.js";
import { SessionRouter } from "./tunnels/sessions.js";
import { Ingest } from "./recordings/ingest.js";
import { LocalLiveFeed, NatsLiveFeed } from "./recordings/live.js";
import { LocalSink } from "./recordings/local-sink.js";
import { chdbPath, storeOpener } from "./recordings/open-store.js";
import { Recordings } from "./recordings/service.js";
import type { EventSink } from "../../relay-agent/src/recording/recorder.js";

export interface Hub {
  id: string;
  /** Where relays and `vigil connect` reach the hub, e.g. 127.0.0.1:8010. */
  grpcAddress: string;
  /** The postgres front door, e.g. 127.0.0.1:15432. */
  postgresAddress: string;
  /** The SSH jump host, e.g. 127.0.0.1:2222. */
  sshAddress: string;
  apiUrl: string;
  enrollmentToken: string;
  tokens: LocalTokens;
  registry: RelayRegistry;
  recordings: Recordings;
  /** For a relay in this process (`vigil up`): its events go straight into this hub's store. */
  localRecordingSink(): EventSink;
  /**
   * Open a tunnel to this hub from a relay in the same process (`vigil up`): an in-memory call that
   * the broker authenticates exactly as a RelayService.Tunnel stream (signed `ready` frame first).
   */
  openLocalTunnel(): FrameCall;
  close(): Promise<void>;
}

export async function startHub(config: Config, log: Logger): Promise<Hub> {
  const id = config.hub.id ?? `${hostname()}-${randomUUID().slice(0, 8)}`;
  log = log.child({ hub: id });
  const dir = dataDir(config);
  const nats = config.storage.nats
    ? await natsConnect({ servers: config.storage.nats.url, name: `vigil-hub-${id}` })
    : undefined;

  const pins: KeyPinStore = nats ? await NatsKeyPinStore.open(nats) : new FileKeyPinStore(join(dir, "relay-pins.json"));
  const identity = await startIdentity(config, { nats, dataDir: dir, log });
  const { auth, tokens } = identity;
  const enrollmentToken = loadEnrollmentToken(config, dir);

  const registry = new RelayRegistry();
  const broker = new TunnelBroker(registry, config.hub.tunnelOpenTimeoutMs, log);
  const policies = new PolicyStore(config.policies, log);
  policies.watch();
  const approvalStore: ApprovalStore = nats
    ? await NatsApprovalStore.open(nats, log)
    : new FileApprovalStore(join(dir, "approvals.json"));
  const approvals = new ApprovalService(approvalStore, policies, log);
  const sessions = new SessionRouter(registry, broker, policies, approvals, log);
  const openStore = storeOpener(config, log);
  const live = nats ? new NatsLiveFeed(nats) : new LocalLiveFeed();
  const ingest = nats && openStore && config.hub.ingest ? new Ingest(nats, openStore, log) : undefined;
  await ingest?.start();
  const recordings = new Recordings(openStore, pins, live, ingest);
  let localSink: LocalSink | undefined;
  const sshKeys: SshKeyStore = nats
    ? await NatsSshKeyStore.open(nats, log)
    : new FileSshKeyStore(join(dir, "ssh-keys.json"));
  const sshHostKey = loadOrCreateSshHostKey(config.hub.ssh.hostKeyFile ?? join(dir, "ssh-host.key"));

  const tls = config.tls ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } : undefined;
  const grpcServer = new grpc.Server(SERVER_OPTIONS);
  grpcServer.addService(RelayService, {
    control: (call: Parameters<typeof handleControl>[0]) =>
      handleControl(call, {
        hubId: id,
        registry,
        pins,
        broker,
        enrollmentToken,
        heartbeatMs: config.hub.heartbeatMs,
        onApprovalRequest: (relay, req) => void handleCommandApproval(relay, req, { sessions, approvals, log }),
        log,
      }),
    tunnel: (call: TunnelCall) => void broker.attach(call),
  });
  grpcServer.addService(ClientService, {
    connect: (call: Parameters<typeof handleConnect>[0]) =>
      void handleConnect(call, {
        auth: auth.forFrontDoor("connect"),
        sessions,
        handshakeTimeoutMs: config.hub.tunnelOpenTimeoutMs,
        log,
      }),
  });
  const credentials = tls
    ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false)
    : grpc.ServerCredentials.createInsecure();
  const grpcListen = parseHostPort(config.listen.grpc);
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(formatHostPort(grpcListen), credentials, (err, port) => (err ? reject(err) : resolve(port))),
  );
  tuneServerTransport(grpcServer, log);
  const grpcAddress = formatHostPort({ host: grpcListen.host, port: grpcPort });

  let api: Api | undefined;
  let apiUrl = "";
  let postgres: PostgresFrontDoor | undefined;
  let ssh: SshJumpHost | undefined;
  const heartbeats = startHeartbeats(registry, config.hub.heartbeatMs, log);
  try {
    postgres = await startPostgresFrontDoor(config.listen.postgres, {
      auth: auth.forFrontDoor("postgres"),
      sessions,
      tls: await frontDoorTls(tls, dir, log),
      allowPlaintext: config.hub.postgres.allowPlaintext,
      peers: nats ? natsCancelPeers(nats) : undefined,
      handshakeTimeoutMs: config.hub.tunnelOpenTimeoutMs + 10_000,
      log,
    });
    ssh = await startSshJumpHost(config.listen.ssh, {
      auth: auth.forFrontDoor("ssh"),
      sessions,
      registry,
      keys: sshKeys,
      hostKey: sshHostKey,
      log,
    });
    api = await buildApi(
      {
        auth,
        tokens,
        web: identity.web,
        registry,
        policies,
        approvals,
        recordings,
        sshKeys,
        log,
        info: () => ({
          version: VERSION,
          hubId: id,
          grpc: { address: config.hub.advertiseGrpc ?? grpcAddress, tls: !!tls },
          listen: { ...config.listen, grpc: grpcAddress, api: apiUrl, postgres: postgres!.address, ssh: ssh!.address },
          ssh: { hostKey: sshHostKey.publicKey },
        }),
      },
      tls,
    );
    const apiListen = parseHostPort(config.listen.api);
    await api.listen({ host: apiListen.host, port: apiListen.port });
    const bound = api.server.address();
    const port = typeof bound === "object" && bound ? bound.port : apiListen.port;
    apiUrl = `${tls ? "https" : "http"}://${formatHostPort({ host: apiListen.host, port })}`;
  } catch (err) {
    await stop();
    throw err;
  }
  if (config.approvals.webhook) notifyWebhook(approvals, config.approvals.webhook, () => apiUrl, log);
  log.info(
    {
      grpc: grpcAddress,
      api: apiUrl,
      postgres: postgres.address,
      ssh: ssh.address,
      tls: !!tls,
      storage: nats ? "nats" : "embedded",
    },
    "hub listening",
  );

  return {
    id,
    grpcAddress,
    postgresAddress: postgres.address,
    sshAddress: ssh.address,
    apiUrl,
    enrollmentToken,
    tokens,
    registry,
    recordings,
    localRecordingSink: () => {
      if (!openStore) throw new Error("this hub has no recording store for a local relay");
      return (localSink ??= new LocalSink(openStore, live, log, chdbPath(config)));
    },
    openLocalTunnel: () => {
      const [hubEnd, relayEnd] = localCallPair();
      void broker.attach(hubEnd);
      return relayEnd;
    },
    close: async () => {
      await stop();
      log.info("hub stopped");
    },
  };

  async function stop(): Promise<void> {
    clearInterval(heartbeats);
    policies.close();
    approvals.close();
    // Relays and clients see their streams end now and reconnect elsewhere; nothing waits on them.
    grpcServer.forceShutdown();
    await postgres?.close();
    await ssh?.close();
    await api?.close();
    await localSink?.close();
    await ingest?.stop();
    await approvalStore.close();
    await sshKeys.close();
    await identity.close();
    await closeNats(nats);
  }
}

/** `vigil ingest`: the ingest worker alone, for fleets that scale it apart from the hubs. */
export async function startIngestWorker(
  config: Config,
  log: Logger,
): Promise<{ store: string; ingest: Ingest; stop(): Promise<void> }> {
  if (!config.storage.nats) throw new Error("config: vigil ingest needs storage.nats (where recordings arrive)");
  const openStore = storeOpener(config, log);
  if (!config.storage.clickhouse || !openStore) {
    throw new Error("config: vigil ingest needs storage.clickhouse (url of a server, or path for chDB)");
  }
  const nats = await natsConnect({
    servers: config.storage.nats.url,
    name: "vigil-ingest",
    maxReconnectAttempts: -1,
  });
  await openStore(); // fail at start, not on the first batch, when the store is unreachable
  const ingest = new Ingest(nats, openStore, log.child({ component: "ingest" }));
  await ingest.start();
  return {
    store: config.storage.clickhouse.url ?? `chdb:${config.storage.clickhouse.path}`,
    ingest,
    stop: async () => {
      await ingest.stop();
      await closeNats(nats);
    },
  };
}

/** Cancel keys this hub does not know go to every hub over NATS; the one that opened the session acts. */
function natsCancelPeers(nc: NatsConnection): CancelPeers {
  const subject = "vigil.hub.postgres.cancel";
  return {
    publish: (key) => nc.publish(subject, key),
    subscribe: (onKey) =>
      void nc.subscribe(subject, {
        callback: (err, msg) => {
          if (!err) onKey(msg.string());
        },
      }),
  };
}

/** The front doors' TLS: the hub's certificate, or one made and kept in the data dir. */
async function frontDoorTls(
  tls: { cert: Buffer; key: Buffer } | undefined,
  dir: string,
  log: Logger,
): Promise<SecureContext> {
  if (tls) return createSecureContext(tls);
  const pair = await selfSignedCert(dir);
  if (pair.created) log.warn({ dir }, "no tls configured: front doors use a new self-signed certificate");
  return createSecureContext(pair);
}

/** Send a heartbeat to every relay, and drop relays that missed three of theirs. */
function startHeartbeats(registry: RelayRegistry, intervalMs: number, log: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    for (const relay of registry.stale(intervalMs * 3)) {
      log.warn({ relay: relay.id }, "relay missed heartbeats; marking offline");
      relay.disconnect?.();
      registry.setStatus(relay, "offline");
    }
    for (const relay of registry.all()) {
      relay.send?.({
        msg: { $case: "heartbeat", value: { sentAtMs: BigInt(Date.now()), activeSessions: relay.activeSessions } },
      });
    }
  }, intervalMs);
  timer.unref();
  return timer;
}

/** The fleet's enrollment token: from config, from a file, or (embedded) generated once into the data dir. */
function loadEnrollmentToken(config: Config, dir: string): string {
  if (config.enrollment.token) return config.enrollment.token;
  const file = config.enrollment.tokenFile ?? (config.storage.embedded ? join(dir, "enrollment.token") : undefined);
  if (!file)
    throw new Error("config: enrollment.token or enrollment.tokenFile is required when storage is not embedded");
  try {
    return readFileSync(file, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || config.enrollment.tokenFile) throw err;
    const token = randomBytes(32).toString("base64url");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(file, token + "\n", { mode: 0o600 });
    return token;
  }
}

async function closeNats(nc: NatsConnection | undefined): Promise<void> {
  if (nc && !nc.isClosed()) await nc.close();
}
