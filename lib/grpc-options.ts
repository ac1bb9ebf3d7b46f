import type { Http2Session } from "node:http2";
import type { Socket } from "node:net";
import type { Server } from "@grpc/grpc-js";
import type { Logger } from "./log.js";

/**
 * HTTP/2 flow-control windows for tunnels. The 64 KiB default caps one stream at window ÷ round trip,
 * about 40 MB/s across three processes here. Larger windows keep the pipe full while still bounding
 * what a peer may send ahead of a slow reader: at most STREAM_WINDOW per session and
 * CONNECTION_WINDOW per relay or client connection.
 */
export const STREAM_WINDOW = 2 * 1024 * 1024;
export const CONNECTION_WINDOW = 16 * 1024 * 1024;

/** Keepalives detect a dead peer in seconds, not minutes. */
const KEEPALIVE = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
};

/** Channel options for relays and `vigil connect` dialing the hub. */
export const CLIENT_CHANNEL_OPTIONS = { ...KEEPALIVE, "grpc-node.flow_control_window": STREAM_WINDOW };

export const SERVER_OPTIONS = { ...KEEPALIVE, "grpc.http2.min_ping_interval_without_data_ms": 5_000 };

/**
 * grpc-js has no server option for flow-control windows or TCP_NODELAY, so set them on each new connection.
 * This reaches into grpc-js's `http2Servers` (private): if a grpc-js upgrade removes it, tunnels keep
 * working at the default window, and the warning below says why throughput dropped.
 */
export function tuneServerTransport(server: Server, log: Logger): void {
  const servers = (server as unknown as { http2Servers?: Map<NodeJS.EventEmitter, unknown> }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    log.warn("cannot widen HTTP/2 windows on this grpc-js version; tunnel throughput will be limited");
    return;
  }
  for (const http2Server of servers.keys()) {
    // grpc-js sets TCP_NODELAY only on the connections it dials; a tunnel's small frames must not wait for Nagle.
    http2Server.on("connection", (socket: Socket) => socket.setNoDelay(true));
    http2Server.on("session", (session: Http2Session) => {
      session.settings({ initialWindowSize: STREAM_WINDOW });
      session.once("localSettings", () => session.setLocalWindowSize(CONNECTION_WINDOW));
    });
  }
}
