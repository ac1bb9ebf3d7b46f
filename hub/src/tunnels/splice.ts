import type { TunnelFrame } from "../../../proto/gen/vigil/v1/tunnel.js";
import type { VigilErrorCode } from "../../../lib/errors.js";
import { errorFrame, type FrameCall } from "../../../lib/tunnel/frames.js";

export interface SpliceEnd {
  call: FrameCall;
  /** Code the other side receives when this side disappears without closing. */
  lostCode: VigilErrorCode;
  name: string;
}

export interface SpliceResult {
  /** Bytes carried from the client to the relay, and back. */
  bytesUp: number;
  bytesDown: number;
  /** Undefined when both sides closed normally. */
  error?: { code: string; message: string; from: string };
}

/**
 * Join the client's stream and the relay's stream at the hub: frames pass through unchanged, with
 * backpressure (a side that cannot take more pauses the other), until both directions are closed or
 * one side fails, in which case the other side receives an error frame and both calls end.
 */
export function splice(client: SpliceEnd, relay: SpliceEnd): Promise<SpliceResult> {
  return new Promise((resolve) => {
    const result: SpliceResult = { bytesUp: 0, bytesDown: 0 };
    const halfClosed = new Set<SpliceEnd>();
    let finished = false;

    const finish = (error?: SpliceResult["error"]) => {
      if (finished) return;
      finished = true;
      if (error) result.error = error;
      for (const end of [client, relay]) {
        try {
          end.call.end();
        } catch {
          // the call is already gone
        }
      }
      resolve(result);
    };

    const fail = (from: SpliceEnd, to: SpliceEnd, code: string, message: string, nativeCode = "") => {
      if (finished) return;
      try {
        to.call.write({ frame: { $case: "error", value: { code, message, nativeCode } } });
      } catch {
        // the receiving side is gone too
      }
      finish({ code, message, from: from.name });
    };

    const forward = (from: SpliceEnd, to: SpliceEnd, count: (n: number) => void) => {
      from.call.on("data", (f: TunnelFrame) => {
        switch (f.frame?.$case) {
          case "data":
            count(f.frame.value.length);
            break;
          case "halfClose":
            halfClosed.add(from);
            break;
          case "error":
            return fail(from, to, f.frame.value.code, f.frame.value.message, f.frame.value.nativeCode);
          default:
            to.call.write(errorFrame("protocol_error", "tunnel peer sent an unexpected frame"));
            return fail(from, from, "protocol_error", `unexpected ${f.frame?.$case ?? "empty"} frame`);
        }
        if (!to.call.write(f)) {
          from.call.pause();
          to.call.once("drain", () => from.call.resume());
        }
      });
      from.call.on("end", () => {
        if (halfClosed.has(from) && halfClosed.has(to)) finish();
        else if (!halfClosed.has(from)) fail(from, to, from.lostCode, `${from.name} closed the tunnel unexpectedly`);
      });
      const lost = (err?: Error) =>
        fail(from, to, from.lostCode, `${from.name} connection lost${err ? `: ${err.message}` : ""}`);
      from.call.on("error", lost);
      from.call.on("cancelled", () => lost());
      from.call.resume();
    };

    forward(client, relay, (n) => (result.bytesUp += n));
    forward(relay, client, (n) => (result.bytesDown += n));
  });
}
