import type { JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { reusable } from "../../../storage/event-batch.js";

/** The first buffer of reply subjects; it grows fourfold as needed (a 40,000-message batch holds ~3.5 MB). */
const INITIAL_BYTES = 64 * 1024;

/**
 * The ack addresses (reply subjects) of a batch's messages, kept as their bytes back to back, and
 * sent as one write of NATS protocol once the batch is stored: `PUB <reply> 4\r\n+ACK\r\n` per
 * message, what `JsMsg.ack()` sends, without a string, a publish call and three small buffers per ack.
 * JetStream still gets one ack per message (AckPolicy.Explicit), so workers sharing the consumer only
 * ever ack their own messages.
 */
export class AckAddresses {
  private bytes: Buffer;
  private length = 0;
  private readonly ends: number[] = [];

  /** `reuse`: the buffer of a batch already acked (`spentBuffer`), to write into instead of a new one. */
  constructor(reuse?: Buffer) {
    this.bytes = reuse ?? Buffer.allocUnsafe(INITIAL_BYTES);
  }

  /** The buffer for the next batch (`reusable`). Call only once these addresses are no longer used. */
  spentBuffer(): Buffer | undefined {
    return reusable(this.bytes, this.length);
  }

  get count(): number {
    return this.ends.length;
  }

  /** Add one message's reply subject. */
  add(reply: Uint8Array): void {
    const start = this.length;
    const need = start + reply.length;
    if (need > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.bytes.length * 4));
      this.bytes.copy(bigger, 0, 0, start);
      this.bytes = bigger;
    }
    this.bytes.set(reply, start);
    this.length = need;
    this.ends.push(need);
  }

  /** One PUB per address, each with `payload`: the bytes to write to the connection. */
  frames(payload: Uint8Array): Buffer {
    const head = `PUB `;
    const tail = ` ${payload.length}\r\n`;
    const per = head.length + tail.length + payload.length + 2;
    const out = Buffer.allocUnsafe(this.length + per * this.ends.length);
    let pos = 0;
    let start = 0;
    for (const end of this.ends) {
      pos += out.write(head, pos, "latin1");
      pos += this.bytes.copy(out, pos, start, end);
      pos += out.write(tail, pos, "latin1");
      out.set(payload, pos);
      pos += payload.length;
      out[pos++] = 13;
      out[pos++] = 10;
      start = end;
    }
    return out.subarray(0, pos);
  }

  /** Each address as a string (the fallback when the connection takes no raw protocol). */
  *subjects(): Iterable<string> {
    let start = 0;
    for (const end of this.ends) {
      yield this.bytes.toString("utf8", start, end);
      start = end;
    }
  }
}

/** The reply subject of a message as bytes: the parser's own bytes when nats.js exposes them. */
export function replyBytes(m: JsMsg): Uint8Array {
  const raw = (m as { msg?: { _msg?: { reply?: unknown } } }).msg?._msg?.reply;
  if (raw instanceof Uint8Array && raw.length > 0) return raw;
  const reply = (m as JsMsg & { reply?: unknown }).reply;
  if (typeof reply !== "string" || reply === "") throw new Error(`message ${m.subject} has no reply subject to ack`);
  return Buffer.from(reply);
}

/** nats.js's connection, where it writes protocol; not in its public types. */
interface RawWriter {
  sendCommand(cmd: Uint8Array): void;
}

/**
 * Send `payload` to every address in one write, or with one publish each when this nats.js does not
 * have the protocol writer we use (the acks are the same either way).
 */
export function sendToAll(nc: NatsConnection, addresses: AckAddresses, payload: Uint8Array): void {
  if (addresses.count === 0) return;
  const protocol = (nc as { protocol?: Partial<RawWriter> }).protocol;
  if (!nc.isClosed() && typeof protocol?.sendCommand === "function") {
    protocol.sendCommand(addresses.frames(payload));
    return;
  }
  for (const subject of addresses.subjects()) nc.publish(subject, payload);
}

/** Whether `sendToAll` writes one frame (the nats.js in use exposes its protocol writer). */
export function writesRaw(nc: NatsConnection): boolean {
  return typeof (nc as { protocol?: Partial<RawWriter> }).protocol?.sendCommand === "function";
}
