import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { toErrorCode, VigilError, type VigilErrorCode } from "../errors.js";

/** The part of a grpc-js bidi call (client or server side) that carries TunnelFrames. */
export interface FrameCall extends NodeJS.EventEmitter {
  write(frame: TunnelFrame): boolean;
  end(): void;
  pause(): unknown;
  resume(): unknown;
}

export const dataFrame = (value: Buffer): TunnelFrame => ({ frame: { $case: "data", value } });
export const HALF_CLOSE: TunnelFrame = { frame: { $case: "halfClose", value: {} } };
export const errorFrame = (code: VigilErrorCode, message: string, nativeCode = ""): TunnelFrame => ({
  frame: { $case: "error", value: { code, message, nativeCode } },
});

export function errorFromFrame(frame: TunnelFrame): VigilError | undefined {
  if (frame.frame?.$case !== "error") return undefined;
  const { code, message, nativeCode } = frame.frame.value;
  return new VigilError(toErrorCode(code), message, { nativeCode: nativeCode || undefined });
}

/**
 * Wait for the first frame of a call (the handshake: open, ready, established), then pause the call
 * so that frames sent right behind it queue in HTTP/2 flow control until a consumer is attached.
 */
export function readFirstFrame(call: FrameCall, lostCode: VigilErrorCode, timeoutMs: number): Promise<TunnelFrame> {
  return new Promise((resolve, reject) => {
    const done = (fn: () => void) => {
      clearTimeout(timer);
      call.off("data", onData);
      call.off("error", onError);
      call.off("end", onEnd);
      fn();
    };
    const onData = (frame: TunnelFrame) => {
      call.pause();
      done(() => resolve(frame));
    };
    const onError = (err: Error) => done(() => reject(new VigilError(lostCode, err.message, { cause: err })));
    const onEnd = () => done(() => reject(new VigilError(lostCode, "stream ended before the handshake")));
    const timer = setTimeout(
      () => done(() => reject(new VigilError("tunnel_timeout", `no handshake within ${timeoutMs} ms`))),
      timeoutMs,
    );
    call.on("data", onData);
    call.on("error", onError);
    call.on("end", onEnd);
  });
}
