import { Duplex } from "node:stream";
import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { VigilError, type VigilErrorCode } from "../errors.js";
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
        if (!this.readClosed && !this.push(frame.frame.value)) this.call.pause();
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
    this.call.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // gRPC refuses messages over 4 MiB by default: a big write (a 64 MiB DataRow) goes as several frames.
    let ok = true;
    for (let at = 0; at < chunk.length; at += MAX_FRAME_BYTES) {
      ok = this.call.write(
        dataFrame(chunk.length <= MAX_FRAME_BYTES ? chunk : chunk.subarray(at, at + MAX_FRAME_BYTES)),
      );
    }
    if (ok) callback();
    else this.call.once("drain", () => callback());
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    // Coalesce small writes queued behind a full call into one frame.
    this._write(Buffer.concat(chunks.map((c) => c.chunk)), "binary", callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.call.write(HALF_CLOSE);
    this.writeClosed = true;
    this.maybeEndCall();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.callDone) {
      this.callDone = true;
      const code = error instanceof VigilError ? error.code : "internal";
      this.call.write(errorFrame(code, error?.message ?? "tunnel closed"));
      this.call.end();
    }
    callback(error);
  }
}
