import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  type RelayServiceClient,
  type ControlRequest,
  type ControlResponse,
  type OpenTunnel,
} from "../../proto/gen/vigil/v1/relay.js";
import { isLoopback, parseHostPort } from "../../lib/address.js";
import { dataDir } from "../../lib/config/load.js";
import type { Config, Connection, RelayConfig } from "../../lib/config/schema.js";
import { VigilError, type VigilErrorCode } from "../../lib/errors.js";
import {
  helloSigningPayload,
  loadOrCreateKey,
  signEd25519,
  tunnelSigningPayload,
  type Ed25519Key,
} from "../../lib/keys.js";
import { CLIENT_CHANNEL_OPTIONS } from "../../lib/grpc-options.js";
import type { Logger } from "../../lib/log.js";
import { FrameDuplex } from "../../lib/tunnel/frame-duplex.js";
import { RelayClient } from "../../lib/tunnel/services.js";
import { SessionPolicy } from "./session-policy.js";
import { VERSION } from "../../lib/version.js";
import { engineFor, SUPPORTED_TYPES } from "./engines/index.js";

export interface Relay {
  id: string;
  /** Resolves once the hub has welcomed this relay (the first time). */
  ready: Promise<void>;
  activeSessions(): number;
  /** Tell the hub to send no new sessions, wait for running ones (up to drainTimeoutMs), then close. */
  drain(reason?: string): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the relay stops for good; rejects when the hub refused its enrollment. */
  closed: Promise<void>;
}

/** The hub refused this relay (bad token, key mismatch): retrying would not help. */
export class EnrollmentRejected extends Error {
  constructor(
    readonly code: string,
    reason: string,
  ) {
    super(`hub rejected the relay (${code}): ${reason}`);
  }
}

type ControlCall = grpc.ClientDuplexStream<ControlRequest, ControlResponse>;

export async function startRelay(config: Config, log: Logger): Promise<Relay> {
  const rc = config.relay;
  if (!rc) throw new Error("config: relay section is required to run a relay");
  const id = rc.id ?? hostname();
  const key = loadOrCreateKey(rc.keyFile ?? join(dataDir(config), `relay-${id}.key`));
  const token = rc.token ?? (rc.tokenFile ? readFileSync(rc.tokenFile, "utf8").trim() : undefined);
  if (!token) throw new Error("config: relay.token or relay.tokenFile is required (the hub's enrollment token)");
  const connections = checkConnections(rc.connections);
  const client = new RelayClient(rc.hub, channelCredentials(rc), CLIENT_CHANNEL_OPTIONS);
  return new RelayAgent(id, rc, key, token, connections, client, log.child({ relay: id, segment: rc.segment })).start();
}

function channelCredentials(rc: RelayConfig): grpc.ChannelCredentials {
  if (rc.tls) return grpc.credentials.createSsl(rc.tls.ca ? readFileSync(rc.tls.ca) : null);
  const { host } = parseHostPort(rc.hub);
  if (!isLoopback(host) && !rc.insecure) {
    throw new Error(
      `config: relay.hub ${rc.hub} is not on loopback; set relay.tls (or relay.insecure: true to send plaintext)`,
    );
  }
  return grpc.credentials.createInsecure();
}

function checkConnections(list: readonly Connection[]): Map<string, Connection> {
  for (const c of list) {
    if (!engineFor(c.type)) {
      throw new Error(
        `config: relay connection "${c.name}": type ${c.type} has no engine in this relay yet (supported: ${SUPPORTED_TYPES.join(", ")})`,
      );
    }
  }
  return new Map(list.map((c) => [c.name, c]));
}

class RelayAgent {
  private stopped = false;
  private draining = false;
  private control: ControlCall | undefined;
  private readonly sessions = new Set<Promise<void>>();
  /** Running sessions by id, for policy updates. */
  private readonly running = new Map<string, { policy: SessionPolicy; tunnel: FrameDuplex; log: Logger }>();
  private markReady!: () => void;
  private readonly ready = new Promise<void>((r) => (this.markReady = r));
  private wake: (() => void) | undefined;

  constructor(
    private readonly id: string,
    private readonly rc: RelayConfig,
    private readonly key: Ed25519Key,
    private readonly token: string,
    private readonly connections: Map<string, Connection>,
    private readonly client: RelayServiceClient,
    private readonly log: Logger,
  ) {}

  start(): Relay {
    const closed = this.loop().finally(() => this.client.close());
    closed.catch(() => {}); // observed through Relay.closed
    return {
      id: this.id,
      ready: this.ready,
      activeSessions: () => this.sessions.size,
      drain: (reason) => this.drain(reason),
      close: async () => {
        this.stop();
        await closed.catch(() => {});
      },
      closed,
    };
  }

  /** Keep one Control stream up: reconnect with exponential backoff and full jitter. */
  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const welcomed = await this.runControl();
      if (this.stopped) break;
      if (welcomed) attempt = 0;
      const cap = Math.min(this.rc.reconnect.maxMs, this.rc.reconnect.initialMs * 2 ** attempt);
      const delay = cap / 2 + Math.random() * (cap / 2);
      attempt++;
      this.log.info({ retryInMs: Math.round(delay) }, "hub unreachable; reconnecting");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => (clearTimeout(t), resolve());
      });
    }
  }

  /** One Control stream from dial to end. Resolves true when the hub had welcomed us. */
  private runControl(): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const call = this.client.control();
      this.control = call;
      let welcomed = false;
      let lastSeen = Date.now();
      let heartbeat: NodeJS.Timeout | undefined;
      const end = () => {
        clearInterval(heartbeat);
        if (this.control === call) this.control = undefined;
        resolve(welcomed);
      };
      call.on("data", (res: ControlResponse) => {
        lastSeen = Date.now();
        const msg = res.msg;
        switch (msg?.$case) {
          case "challenge":
            call.write({ msg: { $case: "hello", value: this.hello(msg.value.nonce) } });
            return;
          case "welcome": {
            welcomed = true;
            const interval = msg.value.heartbeatIntervalMs || this.rc.heartbeatMs;
            heartbeat = setInterval(() => {
              if (Date.now() - lastSeen > interval * 3) {
                this.log.warn("hub missed heartbeats; reconnecting");
                call.cancel();
                return;
              }
              call.write({
                msg: {
                  $case: "heartbeat",
                  value: { sentAtMs: BigInt(Date.now()), activeSessions: this.sessions.size },
                },
              });
            }, interval);
            this.log.info({ hub: msg.value.hubId }, "enrolled with hub");
            if (this.draining) call.write({ msg: { $case: "drain", value: { reason: "relay is draining" } } });
            this.markReady();
            return;
          }
          case "reject":
            this.stopped = true;
            reject(new EnrollmentRejected(msg.value.code, msg.value.reason));
            call.cancel();
            return;
          case "heartbeat":
            return;
          case "openTunnel":
            this.track(this.openTunnel(call, msg.value));
            return;
          case "drain":
            void this.drain(msg.value.reason);
            return;
          case "policyUpdate":
            this.updatePolicy(msg.value.sessionId, msg.value.policy);
            return;
        }
      });
      call.on("error", (err) => {
        if (!this.stopped) this.log.warn({ err: err.message }, "control stream failed");
        end();
      });
      call.on("end", end);
    });
  }

  private hello(nonce: Uint8Array) {
    const payload = helloSigningPayload(nonce, this.id, this.key.publicRaw);
    return {
      relayId: this.id,
      segment: this.rc.segment,
      version: VERSION,
      capabilities: SUPPORTED_TYPES.map((t) => `engine:${t}`),
      connections: [...this.connections.values()].map((c) => ({ name: c.name, type: c.type, labels: { ...c.labels } })),
      enrollmentToken: this.token,
      publicKey: this.key.publicRaw,
      signature: signEd25519(this.key.privateKey, payload),
    };
  }

  private track(session: Promise<void>): void {
    this.sessions.add(session);
    void session.finally(() => this.sessions.delete(session));
  }

  /** Reach the target, then open the Tunnel stream and serve the session until it ends. */
  private async openTunnel(control: ControlCall, req: OpenTunnel): Promise<void> {
    const log = this.log.child({ session: req.sessionId, connection: req.connection, user: req.identity?.subject });
    const fail = (code: VigilErrorCode, message: string) => {
      log.warn({ code, reason: message }, "tunnel failed");
      control.write({ msg: { $case: "tunnelFailed", value: { sessionId: req.sessionId, error: { code, message } } } });
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
    let session;
    try {
      session = await engine.open({
        sessionId: req.sessionId,
        connection,
        identity: req.identity ?? { subject: "", groups: [], issuer: "" },
        policy,
        clientAddress: req.clientAddress,
        log,
      });
    } catch (err) {
      const e = err instanceof VigilError ? err : new VigilError("target_unreachable", String(err));
      return fail(e.code, e.message);
    }
    const call = this.client.tunnel();
    call.write({
      frame: {
        $case: "ready",
        value: {
          sessionId: req.sessionId,
          relayId: this.id,
          signature: signEd25519(this.key.privateKey, tunnelSigningPayload(req.sessionId, this.id)),
        },
      },
    });
    const tunnel = new FrameDuplex(call, { lostCode: "hub_unavailable", peer: "hub" });
    this.running.set(req.sessionId, { policy, tunnel, log });
    log.info({ rules: policy.current.rules.length }, "session started");
    try {
      await session.serve(tunnel);
      log.info("session ended");
    } catch (err) {
      log.info({ err: (err as Error).message }, "session ended with an error");
      tunnel.destroy(err as Error);
    } finally {
      this.running.delete(req.sessionId);
    }
  }

  /** The hub reloaded its policies: later commands of this session see the new rules at once. */
  private updatePolicy(sessionId: string, bytes: Uint8Array): void {
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
    s.tunnel.destroy(new VigilError("forbidden", "access revoked: policy no longer grants connect to this connection"));
  }

  private async drain(reason = "relay is shutting down"): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      this.log.info({ sessions: this.sessions.size, reason }, "draining");
      this.control?.write({ msg: { $case: "drain", value: { reason } } });
    }
    const deadline = new Promise<void>((r) => setTimeout(r, this.rc.drainTimeoutMs).unref());
    await Promise.race([Promise.allSettled([...this.sessions]), deadline]);
    this.stop();
  }

  private stop(): void {
    this.stopped = true;
    this.control?.cancel();
    this.wake?.();
  }
}
