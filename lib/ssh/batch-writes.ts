import type { Socket } from "node:net";

/** What one tick wrote that makes the socket stay corked for the rest of the loop's I/O phase. */
const BULK_BYTES = 16 * 1024;

/**
 * Gather what is written to `socket` during one tick into one writev. ssh2 writes every SSH packet
 * (32 KiB at most) to its socket as it is encrypted, one syscall and one TCP segment each; when a
 * tunnel frame or a socket read brings several packets at once, they now leave together, right after
 * the handlers that wrote them. A tick that wrote BULK_BYTES or more (a file transfer) stays corked
 * until the loop's I/O phase is over (setImmediate), so several reads of one turn share a write; a
 * keystroke leaves after its tick. No timer either way.
 */
export function batchWritesPerTick<S extends Socket>(socket: S): S {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: S, ...args: Parameters<Socket["write"]>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(() => (socket.writableLength >= BULK_BYTES ? setImmediate(uncork) : uncork()));
    }
    return write.apply(this, args);
  } as Socket["write"];
  return socket;
}
