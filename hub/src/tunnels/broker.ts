import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { OpenTunnel } from "../../../proto/gen/vigil/v1/relay.js";
import type { TunnelError, TunnelFrame } from "../../../proto/gen/vigil/v1/tunnel.js";
import { toErrorCode, VigilError } from "../../../lib/errors.js";
import { tunnelSigningPayload, verifyEd25519 } from "../../../lib/keys.js";
import type { Logger } from "../../../lib/log.js";
import { errorFrame, readFirstFrame, type FrameCall } from "../../../lib/tunnel/frames.js";
import type { RelayRecord, RelayRegistry } from "../relays/registry.js";

/** A relay's RelayService.Tunnel stream, as grpc-js hands it to the hub. */
export type TunnelCall = ServerDuplexStream<TunnelFrame, TunnelFrame>;

interface Pending {
  relayId: string;
  resolve(call: FrameCall): void;
  reject(err: VigilError): void;
}

/**
 * Pairs a session the hub asked a relay to open (OpenTunnel on its Control stream) with the Tunnel
 * stream the relay opens in answer, whose first frame names the session and is signed by the relay.
 */
export class TunnelBroker {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly registry: RelayRegistry,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  open(relay: RelayRecord, request: OpenTunnel): Promise<FrameCall> {
    const send = relay.send;
    if (!send) return Promise.reject(new VigilError("relay_unavailable", `relay ${relay.id} is offline`));
    return new Promise<FrameCall>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(request.sessionId)?.reject(
          new VigilError("tunnel_timeout", `relay ${relay.id} did not open the tunnel within ${this.timeoutMs} ms`),
        );
      }, this.timeoutMs);
      this.pending.set(request.sessionId, {
        relayId: relay.id,
        resolve: (call) => (clearTimeout(timer), resolve(call)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
      send({ msg: { $case: "openTunnel", value: request } });
    });
  }

  /** A relay's TunnelFailed for one of its sessions. */
  failed(sessionId: string, relayId: string, error: TunnelError | undefined): void {
    const p = this.pending.get(sessionId);
    if (!p || p.relayId !== relayId) return;
    this.settle(sessionId)?.reject(
      new VigilError(toErrorCode(error?.code ?? "internal"), error?.message ?? "relay could not open the tunnel", {
        nativeCode: error?.nativeCode || undefined,
      }),
    );
  }

  /** A relay's Control stream ended: every session waiting on it fails now rather than at the timeout. */
  relayGone(relayId: string): void {
    for (const [id, p] of this.pending) {
      if (p.relayId === relayId) this.settle(id)?.reject(new VigilError("relay_lost", `relay ${relayId} went offline`));
    }
  }

  /**
   * A new tunnel from a relay: a RelayService.Tunnel stream, or an in-process call pair when the relay
   * runs in this process (`vigil up`). Either way its first frame must name a waiting session and be
   * signed by the key that relay enrolled with; then it is handed to the session.
   */
  async attach(call: FrameCall): Promise<void> {
    try {
      const first = await readFirstFrame(call, "relay_lost", this.timeoutMs);
      if (first.frame?.$case !== "ready") throw new VigilError("protocol_error", "first tunnel frame must be ready");
      const { sessionId, relayId, signature } = first.frame.value;
      const p = this.pending.get(sessionId);
      if (!p || p.relayId !== relayId) throw new VigilError("protocol_error", "no session is waiting for this tunnel");
      const relay = this.registry.get(relayId);
      if (!relay || !verifyEd25519(relay.publicKey, tunnelSigningPayload(sessionId, relayId), signature)) {
        throw new VigilError("protocol_error", "tunnel signature does not verify");
      }
      this.settle(sessionId)?.resolve(call);
    } catch (err) {
      const e = err instanceof VigilError ? err : new VigilError("internal", String(err));
      this.log.warn({ code: e.code, err: e.message }, "tunnel refused");
      call.write(errorFrame(e.code, e.message));
      call.end();
    }
  }

  private settle(sessionId: string): Pending | undefined {
    const p = this.pending.get(sessionId);
    this.pending.delete(sessionId);
    return p;
  }
}
