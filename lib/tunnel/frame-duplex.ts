import { Duplex } from "node:stream";
import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { flushAfterTick } from "../after-tick.js";
import { VigilError, type VigilErrorCode } from "../errors.js";
import { dataFrameOf } from "./codec.js";
import { dataFrame, errorFrame, errorFromFrame, HALF_CLOSE, type FrameCall } from "./frames.js";

/** The largest payload one data frame carries; well under gRPC's default 4 MiB message limit. */
export const MAX_FRAME_BYTES = 1024 * 1024;

export interface FrameDuplexOptions {
  /** Code for a peer that vanishes without closing (the hub for a relay, the relay for the hub). */
  lostCode: VigilErrorCode;
  /** Who the peer is, for error messages ("hub", "relay"). */
  peer: string;
}

/**
 * A byte stream over a bidi call of TunnelFrames, so that tunnels compose with `stream.pipeline`.
 *
 * Backpressure is end to end: a full readable buffer pauses the call (grpc-js then stops reading the
 * HTTP/2 stream and its flow-control window closes on the sender), and a write waits for the call's
 * 'drain'. Half-close travels in-band as a HalfClose frame; the call itself ends once both directions
 * are closed. A peer error frame or a dead call destroys the stream with a VigilError.
 */
export class FrameDuplex extends Duplex {
  private readClosed = false;
  private writeClosed = false;
  private callDone = false;
  /** Data written but not yet sent: one frame per turn of the event loop (see queue). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushQueued = false;
  /** The call asked us to wait (write returned false) and has not drained yet. */
  private callFull = false;
  /** The write callback held back until the call drains. */
  private waiting: ((error?: Error | null) => void) | undefined;
  /**
   * The call may be paused: by us when the readable side was full, or by whoever read its first frame
   * (readFirstFrame). Node asks for more (`_read`) after every chunk pushed; resuming a call that
   * flows already would cost an in-process call a tick of its own per chunk, for nothing.
   */
  private callPaused = true;
  private readonly scheduleFlush = flushAfterTick(
    () => this.pendingBytes,
    () => this.flush(),
  );

  constructor(
    private readonly call: FrameCall,
    private readonly options: FrameDuplexOptions,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    call.on("data", (frame) => this.onFrame(frame));
    call.on("end", () => this.onCallEnd());
    call.on("error", (err) => {
      this.callDone = true;
      this.destroy(new VigilError(options.lostCode, `${options.peer} connection lost: ${err.message}`, { cause: err }));
    });
  }

  private onFrame(frame: TunnelFrame): void {
    switch (frame.frame?.$case) {
      case "data":
        if (!this.readClosed && !this.push(frame.frame.value)) {
          this.callPaused = true;
          this.call.pause();
        }
        return;
      case "halfClose":
        this.readClosed = true;
        this.push(null);
        this.maybeEndCall();
        return;
      case "error":
        this.callDone = true;
        this.destroy(errorFromFrame(frame));
        return;
      default:
        this.destroy(new VigilError("protocol_error", `unexpected ${frame.frame?.$case ?? "empty"} frame in tunnel`));
    }
  }

  private onCallEnd(): void {
    this.callDone = true;
    if (!this.readClosed) {
      this.destroy(new VigilError(this.options.lostCode, `${this.options.peer} closed the tunnel unexpectedly`));
    }
  }

  private maybeEndCall(): void {
    if (this.readClosed && this.writeClosed && !this.callDone) {
      this.callDone = true;
      this.call.end();
    }
  }

  override _read(): void {
    if (!this.callPaused) return;
    this.callPaused = false;
    this.call.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.queue(chunk);
    this.afterQueue(callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) this.queue(chunk);
    this.afterQueue(callback);
  }

  /**
   * Writes are gathered and sent as one data frame when the current tick's work is done (or at
   * MAX_FRAME_BYTES): a relayed SSH connection writes one chunk per 32 KiB packet, and a gRPC
   * message per packet cost more CPU than the bytes. A file transfer's frame also waits for the rest
   * of the loop's I/O phase (flushAfterTick), which joins what several socket reads of one turn
   * brought: scp's frames from the relay to the hub grew from about 56 KiB to 190 KiB, and from the
   * hub to the relay from 230 KiB to 380 KiB.
   */
  private queue(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= MAX_FRAME_BYTES) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      this.scheduleFlush();
    }
  }

  /** The write is taken: done now, or once the call drains when it asked the writer to wait. */
  private afterQueue(callback: (error?: Error | null) => void): void {
    if (!this.callFull) return callback();
    this.waiting = callback;
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.pending.length === 0 || this.callDone) return;
    const chunks = this.pending;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    let ok = true;
    // gRPC refuses messages over 4 MiB by default: a big write (a 64 MiB DataRow) goes as several frames.
    // One chunk goes as it is (a gRPC call's encoder copies it once, an in-process call not at all);
    // several are joined with room for the encoder to write its header in front: still one copy.
    if (total <= MAX_FRAME_BYTES)
      ok = this.call.write(chunks.length === 1 ? dataFrame(chunks[0]!) : dataFrameOf(chunks, total));
    else {
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      for (let at = 0; at < total; at += MAX_FRAME_BYTES)
        ok = this.call.write(dataFrame(all.subarray(at, at + MAX_FRAME_BYTES)));
    }
    if (!ok && !this.callFull) {
      this.callFull = true;
      this.call.once("drain", () => {
        this.callFull = false;
        const callback = this.waiting;
        this.waiting = undefined;
        callback?.();
      });
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.flush();
    this.call.write(HALF_CLOSE);
    this.writeClosed = true;
    this.maybeEndCall();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.callDone) {
      this.flush();
      this.callDone = true;
      const code = error instanceof VigilError ? error.code : "internal";
      this.call.write(errorFrame(code, error?.message ?? "tunnel closed"));
      this.call.end();
    }
    callback(error);
  }
}
