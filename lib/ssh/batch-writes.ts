import type { Socket } from "node:net";
import { flushAfterTick } from "../after-tick.js";

/**
 * Gather what is written to `socket` during one tick into one writev. ssh2 writes every SSH packet
 * (32 KiB at most) to its socket as it is encrypted, one syscall and one TCP segment each; when a
 * tunnel frame or a socket read brings several packets at once, they now leave together, right after
 * the handlers that wrote them; a file transfer's stays corked for the rest of the loop's I/O phase
 * (flushAfterTick).
 */
export function batchWritesPerTick<S extends Socket>(socket: S): S {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  const uncorkAfterTick = flushAfterTick(() => socket.writableLength, uncork);
  socket.write = function (this: S, ...args: Parameters<Socket["write"]>) {
    if (!corked) {
      corked = true;
      socket.cork();
      uncorkAfterTick();
    }
    return write.apply(this, args);
  } as Socket["write"];
  return socket;
}
