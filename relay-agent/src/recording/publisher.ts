import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";

/** Called once per publish: without an error when JetStream stored it (or had it already). */
export type AckCallback = (err?: Error) => void;

/** JetStream answered and did not store the message (unlike a timeout, where it may have). */
export class PublishRefused extends Error {
  override readonly name = "PublishRefused";
}

/**
 * JetStream publishes with many acks outstanding, over plain NATS publishes.
 *
 * `js.publish` makes a request per message (a promise, a timer and the request machinery each),
 * which costs more than the publish itself at tens of thousands of events per second. Here every
 * publish carries a reply subject `<inbox>.<n>`, one wildcard subscription receives all the acks,
 * and one timer fails the publishes that waited longer than the timeout. What JetStream stores is
 * the same: the subject, the payload and `Nats-Msg-Id` for its duplicate window.
 */
export class AckedPublisher {
  private readonly inbox = createInbox();
  private readonly sub: Subscription;
  /** In publish order; with one timeout for all, the oldest expire first. */
  private readonly pending = new Map<number, { done: AckCallback; deadline: number }>();
  private next = 0;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    this.sub = nc.subscribe(`${this.inbox}.*`, { callback: (_err, msg) => this.onAck(msg) });
    this.sweeper = setInterval(() => this.expire(), Math.max(10, Math.min(250, timeoutMs / 4)));
    this.sweeper.unref();
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** `done` is always called later, never from within publish(). */
  publish(subject: string, data: Uint8Array, msgId: string, done: AckCallback): void {
    if (this.closed) return queueMicrotask(() => done(new Error("NATS connection closed")));
    const n = ++this.next;
    const h = headers();
    h.set("Nats-Msg-Id", msgId);
    this.pending.set(n, { done, deadline: Date.now() + this.timeoutMs });
    try {
      this.nc.publish(subject, data, { headers: h, reply: `${this.inbox}.${n}` });
    } catch (err) {
      this.pending.delete(n);
      queueMicrotask(() => done(err as Error));
    }
  }

  /** Fail everything outstanding (the connection is gone: none of it can be acked any more). */
  close(reason = "NATS connection closed"): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    if (!this.nc.isClosed()) this.sub.unsubscribe();
    const err = new Error(reason);
    for (const [n, p] of this.pending) {
      this.pending.delete(n);
      p.done(err);
    }
  }

  private onAck(msg: Msg): void {
    const n = Number(msg.subject.slice(this.inbox.length + 1));
    const p = this.pending.get(n);
    if (!p) return; // expired already
    this.pending.delete(n);
    p.done(ackError(msg));
  }

  private expire(): void {
    const now = Date.now();
    for (const [n, p] of this.pending) {
      if (p.deadline > now) break;
      this.pending.delete(n);
      p.done(new Error("timeout waiting for the JetStream ack"));
    }
  }
}

/** Undefined for a stored (or duplicate) message; the reason otherwise. */
function ackError(msg: Msg): Error | undefined {
  if (msg.headers?.hasError) {
    // 503: no stream listens on the subject (JetStream down, or the stream is gone).
    return new PublishRefused(`JetStream did not take the message: ${msg.headers.code} ${msg.headers.description}`);
  }
  try {
    const ack = msg.json<{ error?: { description?: string }; seq?: number }>();
    if (ack.error) return new PublishRefused(ack.error.description ?? "JetStream refused the message");
    if (typeof ack.seq !== "number") return new Error("invalid JetStream ack");
    return undefined;
  } catch {
    return new Error("invalid JetStream ack");
  }
}
