import type { Socket } from "node:net";

/**
 * Gather what is written to `socket` during one turn of the event loop into one writev. ssh2 writes
 * every SSH packet (32 KiB at most) to its socket as it is encrypted, one syscall and one TCP segment
 * each; when a tunnel frame or a socket read brings several packets at once, they now leave together
 * once the loop has run the I/O callbacks that were ready (setImmediate: several reads of one turn
 * share a write). No timer, so an interactive keystroke leaves in the same turn.
 */
export function batchWritesPerTurn<S extends Socket>(socket: S): S {
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
      setImmediate(uncork);
    }
    return write.apply(this, args);
  } as Socket["write"];
  return socket;
}
