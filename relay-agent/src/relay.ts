import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { ApprovalUpdate, OpenTunnel } from "../../proto/gen/vigil/v1/relay.js";
import { isLoopback, parseHostPort } from "../../lib/address.js";
import { dataDir } from "../../lib/config/load.js";
import type { Config, Connection, RelayConfig } from "../../lib/config/schema.js";
import { VigilError, type VigilErrorCode } from "../../lib/errors.js";
import { CLIENT_CHANNEL_OPTIONS } from "../../lib/grpc-options.js";
import {
  helloSigningPayload,
  loadOrCreateKey,
  signEd25519,
  tunnelSigningPayload,
  type Ed25519Key,
} from "../../lib/keys.js";
import type { Logger } from "../../lib/log.js";
import { loadOrCreateSshHostKey, type SshHostKey } from "../../lib/ssh/host-key.js";
import { FrameDuplex } from "../../lib/tunnel/frame-duplex.js";
import type { FrameCall } from "../../lib/tunnel/frames.js";
import { RelayClient } from "../../lib/tunnel/services.js";
import { VERSION } from "../../lib/version.js";
import type { ApprovalOutcome, EngineSession } from "./engines/engine.js";
import { engineFor, SUPPORTED_TYPES } from "./engines/index.js";
import { resolveHubs, type HubAddress } from "./hub-discovery.js";
import { EnrollmentRejected, HubLink, type LinkOwner } from "./hub-link.js";
import { JetStreamSink } from "./recording/jetstream.js";
import { FileSink, Recorder, type EventSink, type SessionRecording } from "./recording/recorder.js";
import { SessionPolicy } from "./session-policy.js";

export { EnrollmentRejected } from "./hub-link.js";

export interface Relay {
  id: string;
  /** Resolves once a hub has welcomed this relay (the first time). */
  ready: Promise<void>;
  activeSessions(): number;
  /** Tell the hubs to send no new sessions, wait for running ones (up to drainTimeoutMs), then close. */
  drain(reason?: string): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the relay stops for good; rejects when a hub refused its enrollment. */
  closed: Promise<void>;
}

/** How often hub names are resolved again, to follow replicas that come and go. */
const REDISCOVER_MS = 30_000;

export interface RelayOptions {
  /** Where recordings go; by default JetStream when storage.nats is set, else files under the data dir. */
  sink?: EventSink;
  /**
   * The hub running in this process (`vigil up`). Sessions that hub asks for get their tunnel as an
   * in-memory call instead of a Tunnel stream over loopback; enrollment, the Control stream and the
   * signed `ready` frame the hub checks stay as they are. Sessions of other hubs use gRPC.
   */
  inProcessHub?: InProcessHub;
}

export interface InProcessHub {
  id: string;
  openLocalTunnel(): FrameCall;
}

export async function startRelay(config: Config, log: Logger, options: RelayOptions = {}): Promise<Relay> {
  const rc = config.relay;
  if (!rc) throw new Error("config: relay section is required to run a relay");
  const id = rc.id ?? hostname();
  const key = loadOrCreateKey(rc.keyFile ?? join(dataDir(config), `relay-${id}.key`));
  const token = rc.token ?? (rc.tokenFile ? readFileSync(rc.tokenFile, "utf8").trim() : undefined);
  if (!token) throw new Error("config: relay.token or relay.tokenFile is required (the hub's enrollment token)");
  const hubs = rc.hubs ?? [rc.hub];
  for (const hub of hubs) checkTransport(rc, hub);
  // With recording.onFailure: block, a sink that can keep nothing more ends every running session.
  // Assigned once, below: the sink it is built with may call onUnavailable before that (no sessions then).
  // eslint-disable-next-line prefer-const
  let agent: RelayAgent | undefined;
  const onUnavailable = (err: VigilError) => {
    log.error({ code: err.code, sessions: agent?.activeSessions() ?? 0 }, `${err.message}: ending running sessions`);
    agent?.endSessions(err);
  };
  // One SSH host key per relay, made on first use, only when the relay serves ssh connections.
  const sshHostKey = rc.connections.some((c) => c.type === "ssh")
    ? loadOrCreateSshHostKey(rc.sshHostKeyFile ?? join(dataDir(config), `relay-${id}-ssh-host.key`))
    : undefined;
  agent = new RelayAgent(
    id,
    rc,
    hubs,
    key,
    token,
    checkConnections(rc.connections),
    new Recorder(options.sink ?? recordingSink(config, id, log, onUnavailable), key.privateKey),
    log.child({ relay: id, segment: rc.segment }),
    options.inProcessHub,
    sshHostKey,
  );
  return agent.start();
}

/** JetStream (spooling to disk while NATS is away) when there is a NATS to ship to, else the relay's disk. */
function recordingSink(
  config: Config,
  relayId: string,
  log: Logger,
  onUnavailable: (err: VigilError) => void,
): EventSink {
  const nats = config.storage.nats;
  if (!nats) {
    const dir = join(dataDir(config), "recordings");
    log.warn({ dir }, "no storage.nats configured: recordings stay on this relay's disk and are not searchable");
    return new FileSink(dir);
  }
  const { onFailure, spool } = config.recording;
  return new JetStreamSink({
    servers: nats.url,
    name: `vigil-relay-${relayId}`,
    segment: config.relay!.segment,
    spool: { dir: spool.dir ?? join(dataDir(config), "spool"), maxBytes: spool.maxBytes },
    onFailure,
    log,
    onUnavailable,
  });
}

function checkTransport(rc: RelayConfig, hub: string): void {
  if (rc.tls || rc.insecure || isLoopback(parseHostPort(hub).host)) return;
  throw new Error(
    `config: relay hub ${hub} is not on loopback; set relay.tls (or relay.insecure: true to send plaintext)`,
  );
}

function checkConnections(list: readonly Connection[]): Map<string, Connection> {
  for (const c of list) {
    const engine = engineFor(c.type);
    if (!engine) {
      throw new Error(
        `config: relay connection "${c.name}": type ${c.type} has no engine in this relay yet (supported: ${SUPPORTED_TYPES.join(", ")})`,
      );
    }
    engine.check?.(c);
  }
  return new Map(list.map((c) => [c.name, c]));
}

interface RunningSession {
  policy: SessionPolicy;
  tunnel?: FrameDuplex;
  engine?: EngineSession;
  /** Commands held for review, by request id: resolved by the hub's final ApprovalUpdate. */
  approvals: Map<string, PendingApproval>;
  log: Logger;
}

interface PendingApproval {
  onPending(approvalId: string): void;
  resolve(outcome: ApprovalOutcome): void;
}

/**
 * A relay: one HubLink per hub address (every replica of the hub gets a Control stream, so a
 * session can start at any of them), and the sessions, drain state and engines they share.
 */
class RelayAgent implements LinkOwner {
  private stopped = false;
  private draining = false;
  private readonly links = new Map<string, { link: HubLink; done: Promise<void> }>();
  private readonly hubOwners = new Map<string, HubLink>();
  private readonly sessions = new Set<Promise<void>>();
  private readonly running = new Map<string, RunningSession>();
  private markReady!: () => void;
  private readonly readyPromise = new Promise<void>((r) => (this.markReady = r));
  private fail!: (err: Error) => void;
  private finish!: () => void;
  private readonly closed = new Promise<void>((resolve, reject) => ((this.finish = resolve), (this.fail = reject)));
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly id: string,
    private readonly rc: RelayConfig,
    private readonly hubs: readonly string[],
    private readonly key: Ed25519Key,
    private readonly token: string,
    private readonly connections: Map<string, Connection>,
    private readonly recorder: Recorder,
    private readonly log: Logger,
    private readonly inProcessHub: InProcessHub | undefined,
    private readonly sshHostKey: SshHostKey | undefined,
  ) {}

  start(): Relay {
    this.closed.catch(() => {}); // observed through Relay.closed
    void this.refresh();
    this.refreshTimer = setInterval(() => void this.refresh(), REDISCOVER_MS);
    return {
      id: this.id,
      ready: this.readyPromise,
      activeSessions: () => this.sessions.size,
      drain: (reason) => this.drain(reason),
      close: async () => {
        await this.stop();
        await this.closed.catch(() => {});
      },
      closed: this.closed,
    };
  }

  /** Dial hub addresses that appeared; keep the others (a vanished address fails and retries on its own). */
  private async refresh(): Promise<void> {
    const addresses = await resolveHubs(this.hubs);
    if (this.stopped) return;
    if (addresses.length === 0) this.log.warn({ hubs: this.hubs }, "no hub address resolves yet");
    for (const a of addresses) if (!this.links.has(a.address)) this.addLink(a);
  }

  private addLink(a: HubAddress): void {
    const options = {
      ...CLIENT_CHANNEL_OPTIONS,
      ...(this.rc.tls ? tlsNameOptions(this.rc.tls.serverName ?? a.serverName) : {}),
    };
    const client = new RelayClient(a.address, credentials(this.rc), options);
    const link = new HubLink(a.address, client, this.rc, this, this.log);
    this.links.set(a.address, { link, done: link.run() });
  }

  // ---- LinkOwner: what links ask of the relay ----

  hello(nonce: Uint8Array) {
    return {
      relayId: this.id,
      segment: this.rc.segment,
      version: VERSION,
      capabilities: SUPPORTED_TYPES.map((t) => `engine:${t}`),
      connections: [...this.connections.values()].map((c) => ({
        name: c.name,
        type: c.type,
        labels: { ...c.labels },
        sshHostKey: c.type === "ssh" ? (this.sshHostKey?.publicKey ?? "") : "",
      })),
      enrollmentToken: this.token,
      publicKey: this.key.publicRaw,
      signature: signEd25519(this.key.privateKey, helloSigningPayload(nonce, this.id, this.key.publicRaw)),
    };
  }

  claimHub(hubId: string, link: HubLink): boolean {
    const owner = this.hubOwners.get(hubId);
    if (owner && owner !== link) return false;
    this.hubOwners.set(hubId, link);
    return true;
  }

  releaseHub(hubId: string, link: HubLink): void {
    if (this.hubOwners.get(hubId) === link) this.hubOwners.delete(hubId);
  }

  welcomed(): void {
    this.markReady();
  }

  rejected(err: EnrollmentRejected): void {
    this.log.error({ code: err.code }, err.message);
    this.fail(err);
    void this.stop();
  }

  openTunnel(link: HubLink, req: OpenTunnel): void {
    const session = this.serveSession(link, req);
    this.sessions.add(session);
    void session.finally(() => this.sessions.delete(session));
  }

  policyUpdate(sessionId: string, bytes: Uint8Array): void {
    const s = this.running.get(sessionId);
    if (!s) return;
    let granted: boolean;
    try {
      granted = s.policy.update(bytes);
    } catch (err) {
      granted = false;
      s.log.warn({ err: (err as Error).message }, "policy update rejected");
    }
    if (granted) {
      s.log.info({ rules: s.policy.current.rules.map((r) => r.rule.id) }, "policy updated");
      return;
    }
    s.log.info("policy no longer grants connect; ending session");
    s.tunnel?.destroy(
      new VigilError("forbidden", "access revoked: policy no longer grants connect to this connection"),
    );
  }

  cancelSession(sessionId: string): void {
    const s = this.running.get(sessionId);
    if (!s?.engine?.cancel) return;
    s.log.info("cancel requested by the client");
    s.engine.cancel();
  }

  approvalUpdate(u: ApprovalUpdate): void {
    const pending = this.running.get(u.sessionId)?.approvals.get(u.requestId);
    if (!pending) return;
    if (u.status === "pending") return pending.onPending(u.approvalId);
    const status = (["approved", "denied", "expired"] as const).find((s) => s === u.status) ?? "error";
    pending.resolve({ status, approvalId: u.approvalId, decisions: u.decisions, message: u.message });
  }

  drainRequested(reason: string): void {
    void this.drain(reason);
  }

  activeSessions(): number {
    return this.sessions.size;
  }

  isDraining(): boolean {
    return this.draining;
  }

  // ---- sessions ----

  /** Reach the target, then open the Tunnel stream on the asking hub's link and serve until the session ends. */
  private async serveSession(link: HubLink, req: OpenTunnel): Promise<void> {
    const log = this.log.child({ session: req.sessionId, connection: req.connection, user: req.identity?.subject });
    const fail = (code: VigilErrorCode, message: string, nativeCode = "") => {
      log.warn({ code, reason: message }, "tunnel failed");
      link.send({
        msg: { $case: "tunnelFailed", value: { sessionId: req.sessionId, error: { code, message, nativeCode } } },
      });
    };
    if (this.draining) return fail("relay_draining", `relay ${this.id} is draining`);
    const connection = this.connections.get(req.connection);
    if (!connection) return fail("unknown_connection", `relay ${this.id} does not serve "${req.connection}"`);
    const engine = engineFor(connection.type);
    if (!engine) return fail("unknown_connection", `relay ${this.id} has no engine for ${connection.type}`);
    let policy: SessionPolicy;
    try {
      policy = new SessionPolicy(req.policy);
    } catch (err) {
      return fail("forbidden", (err as Error).message);
    }
    const identity = req.identity ?? { subject: "", groups: [], issuer: "" };
    let recording: SessionRecording;
    try {
      recording = await this.recorder.open(req.sessionId);
    } catch (err) {
      // No recording, no session: fail closed.
      const e = err instanceof VigilError ? err : new VigilError("recording_unavailable", String(err));
      return fail(e.code, e.message);
    }
    recording.record({
      $case: "sessionStart",
      value: {
        connection: connection.name,
        connectionType: connection.type,
        segment: this.rc.segment,
        relayId: this.id,
        hubId: link.hub ?? "",
        user: identity.subject,
        groups: identity.groups,
        clientAddress: req.clientAddress,
        params: Object.entries(req.params).map(([key, value]) => ({ key, value })),
        target: connection.target,
      },
    });
    let endError: string | undefined;
    const running: RunningSession = { policy, approvals: new Map(), log };
    this.running.set(req.sessionId, running);
    let requests = 0;
    const requestApproval = (r: { rule: string; command: string }, onPending: (id: string) => void) =>
      new Promise<ApprovalOutcome>((resolve) => {
        const requestId = String(++requests);
        running.approvals.set(requestId, {
          onPending,
          resolve: (outcome) => (running.approvals.delete(requestId), resolve(outcome)),
        });
        link.send({ msg: { $case: "approvalRequest", value: { sessionId: req.sessionId, requestId, ...r } } });
      });
    try {
      try {
        running.engine = await engine.open({
          sessionId: req.sessionId,
          connection,
          identity,
          policy,
          recording,
          clientAddress: req.clientAddress,
          params: req.params,
          sshHostKey: this.sshHostKey?.privateKey,
          requestApproval,
          log,
        });
      } catch (err) {
        const e = err instanceof VigilError ? err : new VigilError("target_unreachable", String(err));
        endError = e.message;
        return fail(e.code, e.message, e.nativeCode);
      }
      const local = this.inProcessHub && link.hub === this.inProcessHub.id ? this.inProcessHub : undefined;
      const call: FrameCall = local ? local.openLocalTunnel() : link.client.tunnel();
      const signature = signEd25519(this.key.privateKey, tunnelSigningPayload(req.sessionId, this.id));
      call.write({ frame: { $case: "ready", value: { sessionId: req.sessionId, relayId: this.id, signature } } });
      const tunnel = new FrameDuplex(call, { lostCode: "hub_unavailable", peer: "hub" });
      running.tunnel = tunnel;
      log.info({ rules: policy.current.rules.length, tunnel: local ? "in-process" : "grpc" }, "session started");
      try {
        await running.engine.serve(tunnel);
        log.info("session ended");
      } catch (err) {
        log.info({ err: (err as Error).message }, "session ended with an error");
        endError = (err as Error).message;
        tunnel.destroy(err as Error);
      }
    } finally {
      void recording.end({ error: endError ?? "" });
      this.running.delete(req.sessionId);
      // A held command whose session is gone never runs.
      for (const p of running.approvals.values()) {
        p.resolve({ status: "error", approvalId: "", decisions: [], message: "the session ended" });
      }
    }
  }

  private async drain(reason = "relay is shutting down"): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      this.log.info({ sessions: this.sessions.size, reason }, "draining");
      for (const { link } of this.links.values()) link.send({ msg: { $case: "drain", value: { reason } } });
    }
    const deadline = new Promise<void>((r) => setTimeout(r, this.rc.drainTimeoutMs).unref());
    await Promise.race([Promise.allSettled([...this.sessions]), deadline]);
    await this.stop();
  }

  /** End every running session now, telling each client why (the tunnel carries the error). */
  endSessions(err: VigilError): void {
    for (const s of this.running.values()) s.tunnel?.destroy(err);
  }

  private async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.refreshTimer);
    for (const { link } of this.links.values()) link.stop();
    await Promise.allSettled([...this.links.values()].map((l) => l.done));
    await this.recorder.close();
    this.finish();
  }
}

function credentials(rc: RelayConfig): grpc.ChannelCredentials {
  return rc.tls
    ? grpc.credentials.createSsl(rc.tls.ca ? readFileSync(rc.tls.ca) : null)
    : grpc.credentials.createInsecure();
}

/** Dialing an IP resolved from a name: check the certificate against the name, not the IP. */
function tlsNameOptions(serverName: string) {
  return { "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName };
}
