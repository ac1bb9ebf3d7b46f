import { EventEmitter } from "node:events";
import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import type { FrameCall } from "./frames.js";

/** Bytes of data frames one end may have queued for its peer before `write` asks the writer to wait. */
export const LOCAL_WINDOW_BYTES = 1024 * 1024;

/**
 * Two connected in-memory FrameCalls: what one end writes, the other receives as "data", in order.
 * It stands in for a gRPC Tunnel stream when the hub and the relay run in one process (`vigil up`):
 * the same frames (the signed `ready` first, then data, half-close, errors) go through the same
 * broker and FrameDuplex code, without HTTP/2 framing, a loopback socket and two more syscalls per
 * message each way.
 *
 * It behaves as the gRPC calls do where Vigil relies on it: frames arrive asynchronously (never
 * inside the writer's `write`), `pause` stops delivery until `resume`, `write` returns false once
 * LOCAL_WINDOW_BYTES of data wait unread and "drain" follows when the reader has taken them, and
 * `end` is seen by the peer as "end" after every frame written before it. Frames written after `end`
 * are dropped, as a finished call drops them.
 */
export function localCallPair(): [LocalCall, LocalCall] {
  const a = new LocalCall();
  const b = new LocalCall();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export class LocalCall extends EventEmitter implements FrameCall {
  /** @internal set once by localCallPair */
  peer!: LocalCall;
  /** Frames the peer wrote that this end has not delivered yet. */
  private readonly inbox: TunnelFrame[] = [];
  private inboxBytes = 0;
  private paused = false;
  private scheduled = false;
  /** The peer ended its side: "end" once the inbox is delivered. */
  private peerEnded = false;
  private endEmitted = false;
  /** This end called end(): it writes no more. */
  private ended = false;
  /** The peer's write returned false: it waits for "drain". */
  private peerWaiting = false;
  /** One function for every delivery tick, not a closure per scheduled delivery. */
  private readonly deliverNow = () => this.deliver();

  write(frame: TunnelFrame): boolean {
    if (this.ended) return true;
    return this.peer.receive(frame);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.peer.peerEnded = true;
    this.peer.schedule();
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    this.paused = false;
    this.schedule();
    return this;
  }

  private receive(frame: TunnelFrame): boolean {
    // Both sides ended: the call is over and a late frame has nobody to go to.
    if (this.ended && this.peerEnded) return true;
    this.inbox.push(frame);
    if (frame.frame?.$case === "data") this.inboxBytes += frame.frame.value.length;
    this.schedule();
    if (this.inboxBytes < LOCAL_WINDOW_BYTES) return true;
    this.peerWaiting = true;
    return false;
  }

  /** Deliver on the next tick: one pass delivers every frame queued by then (a burst, not one per frame). */
  private schedule(): void {
    if (this.scheduled || this.paused) return;
    this.scheduled = true;
    process.nextTick(this.deliverNow);
  }

  private deliver(): void {
    this.scheduled = false;
    let i = 0;
    while (!this.paused && i < this.inbox.length) {
      const frame = this.inbox[i++]!;
      if (frame.frame?.$case === "data") this.inboxBytes -= frame.frame.value.length;
      this.emit("data", frame);
    }
    // Listeners may have paused mid-burst: what was not delivered stays for resume().
    this.inbox.splice(0, i);
    if (this.peerWaiting && this.inboxBytes < LOCAL_WINDOW_BYTES) {
      this.peerWaiting = false;
      this.peer.emit("drain");
    }
    if (this.inbox.length === 0 && this.peerEnded && !this.endEmitted && !this.paused) {
      this.endEmitted = true;
      this.emit("end");
    }
  }
}
