import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseHostPort } from "../../../../lib/address.js";
import { VigilError } from "../../../../lib/errors.js";
import type { EngineSession, ProtocolEngine, SessionContext } from "../engine.js";

const CONNECT_TIMEOUT_MS = 10_000;

/** `tcp`: raw bytes to the target, both ways, half-close preserved. No parsing, so no command policy. */
export const tcpEngine: ProtocolEngine = {
  async open(ctx: SessionContext): Promise<EngineSession> {
    const target = await dial(ctx.connection.target);
    return {
      serve: (client: Duplex) => pipeline(client, target, client),
    };
  },
};

function dial(address: string): Promise<Socket> {
  const { host, port } = parseHostPort(address);
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(
      () => socket.destroy(new Error(`timed out after ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new VigilError("target_unreachable", `cannot reach ${address}: ${err.message}`, { cause: err }));
    });
  });
}
