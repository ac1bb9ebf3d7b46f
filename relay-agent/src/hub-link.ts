import type * as grpc from "@grpc/grpc-js";
import type {
  ApprovalUpdate,
  ControlRequest,
  ControlResponse,
  Hello,
  OpenTunnel,
  RelayServiceClient,
} from "../../proto/gen/vigil/v1/relay.js";
import type { RelayConfig } from "../../lib/config/schema.js";
import type { Logger } from "../../lib/log.js";

type ControlCall = grpc.ClientDuplexStream<ControlRequest, ControlResponse>;

/** The hub refused this relay (bad token, key mismatch): retrying would not help. */
export class EnrollmentRejected extends Error {
  constructor(
    readonly code: string,
    reason: string,
  ) {
    super(`hub rejected the relay (${code}): ${reason}`);
  }
}

/** What a link needs from the relay it belongs to. */
export interface LinkOwner {
  hello(nonce: Uint8Array): Hello;
  /** Take `hubId` for this link; false when another live link already serves that hub. */
  claimHub(hubId: string, link: HubLink): boolean;
  releaseHub(hubId: string, link: HubLink): void;
  welcomed(link: HubLink, hubId: string): void;
  rejected(err: EnrollmentRejected): void;
  openTunnel(link: HubLink, req: OpenTunnel): void;
  policyUpdate(sessionId: string, policy: Uint8Array): void;
  cancelSession(sessionId: string): void;
  approvalUpdate(update: ApprovalUpdate): void;
  drainRequested(reason: string): void;
  activeSessions(): number;
  isDraining(): boolean;
}

/**
 * One hub, one Control stream: dial, prove the relay's key, heartbeat, follow the hub's requests,
 * and redial with exponential backoff and jitter whenever the stream ends.
 */
export class HubLink {
  private control: ControlCall | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private hubId: string | undefined;

  constructor(
    readonly address: string,
    readonly client: RelayServiceClient,
    private readonly rc: RelayConfig,
    private readonly owner: LinkOwner,
    private readonly log: Logger,
  ) {}

  /** The hub this link is welcomed by, once it is. */
  get hub(): string | undefined {
    return this.hubId;
  }

  /** Runs until stop(); each turn is one Control stream. */
  async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const welcomed = await this.runControl();
      if (this.stopped) break;
      if (welcomed) attempt = 0;
      const cap = Math.min(this.rc.reconnect.maxMs, this.rc.reconnect.initialMs * 2 ** attempt);
      const delay = cap / 2 + Math.random() * (cap / 2);
      attempt++;
      this.log.info({ hub: this.address, retryInMs: Math.round(delay) }, "hub unreachable; reconnecting");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wake = () => (clearTimeout(t), resolve());
      });
    }
    this.client.close();
  }

  send(msg: ControlRequest): void {
    this.control?.write(msg);
  }

  stop(): void {
    this.stopped = true;
    this.control?.cancel();
    this.wake?.();
  }

  /** One Control stream from dial to end. Resolves true when the hub had welcomed us. */
  private runControl(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const call = this.client.control();
      this.control = call;
      let welcomed = false;
      let duplicate = false;
      let lastSeen = Date.now();
      let heartbeat: NodeJS.Timeout | undefined;
      const end = () => {
        clearInterval(heartbeat);
        if (this.control === call) this.control = undefined;
        if (this.hubId) this.owner.releaseHub(this.hubId, this);
        this.hubId = undefined;
        resolve(welcomed);
      };
      call.on("data", (res: ControlResponse) => {
        lastSeen = Date.now();
        const msg = res.msg;
        switch (msg?.$case) {
          case "challenge":
            if (msg.value.hubId && !this.owner.claimHub(msg.value.hubId, this)) {
              this.log.debug({ hub: this.address, hubId: msg.value.hubId }, "another link serves this hub");
              duplicate = true;
              call.cancel();
              return;
            }
            this.hubId = msg.value.hubId || undefined;
            call.write({ msg: { $case: "hello", value: this.owner.hello(msg.value.nonce) } });
            return;
          case "welcome": {
            welcomed = true;
            const interval = msg.value.heartbeatIntervalMs || this.rc.heartbeatMs;
            heartbeat = setInterval(() => {
              if (Date.now() - lastSeen > interval * 3) {
                this.log.warn({ hub: this.address }, "hub missed heartbeats; reconnecting");
                call.cancel();
                return;
              }
              const activeSessions = this.owner.activeSessions();
              call.write({ msg: { $case: "heartbeat", value: { sentAtMs: BigInt(Date.now()), activeSessions } } });
            }, interval);
            this.log.info({ hub: msg.value.hubId, address: this.address }, "enrolled with hub");
            if (this.owner.isDraining())
              call.write({ msg: { $case: "drain", value: { reason: "relay is draining" } } });
            this.owner.welcomed(this, msg.value.hubId);
            return;
          }
          case "reject":
            this.stopped = true;
            call.cancel();
            this.owner.rejected(new EnrollmentRejected(msg.value.code, msg.value.reason));
            return;
          case "heartbeat":
            return;
          case "openTunnel":
            this.owner.openTunnel(this, msg.value);
            return;
          case "drain":
            this.owner.drainRequested(msg.value.reason);
            return;
          case "policyUpdate":
            this.owner.policyUpdate(msg.value.sessionId, msg.value.policy);
            return;
          case "cancelSession":
            this.owner.cancelSession(msg.value.sessionId);
            return;
          case "approvalUpdate":
            this.owner.approvalUpdate(msg.value);
            return;
        }
      });
      call.on("error", (err) => {
        if (!this.stopped && !duplicate)
          this.log.warn({ hub: this.address, err: err.message }, "control stream failed");
        end();
      });
      call.on("end", end);
    });
  }
}
