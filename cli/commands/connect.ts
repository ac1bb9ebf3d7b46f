import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { pipeline } from "node:stream/promises";
import * as grpc from "@grpc/grpc-js";
import type { Command } from "commander";
import type { ClientServiceClient } from "../../proto/gen/vigil/v1/client.js";
import { VigilError } from "../../lib/errors.js";
import { CLIENT_CHANNEL_OPTIONS } from "../../lib/grpc-options.js";
import { FrameDuplex } from "../../lib/tunnel/frame-duplex.js";
import { errorFromFrame, readFirstFrame } from "../../lib/tunnel/frames.js";
import { ConnectClient } from "../../lib/tunnel/services.js";
import { apiRequest, type ClientOptions } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface Info {
  grpc: { address: string; tls: boolean };
}

export function connectCommand(program: Command): void {
  withClientOptions(
    program
      .command("connect")
      .description("listen on a local port and tunnel every connection to <connection> through the hub")
      .argument("<connection>", "connection name, as listed by the hub")
      .requiredOption("--port <port>", "local port to listen on (0 = any free port)")
      .option("--bind <host>", "local address to listen on", "127.0.0.1"),
  ).action(async (connection: string, opts: { port: string; bind: string }, cmd: Command) => {
    const client = clientOptions(cmd);
    if (!client.token) throw new Error("a token is required: --token or VIGIL_TOKEN");
    await connect(connection, Number(opts.port), opts.bind, client);
  });
}

async function connect(connection: string, port: number, bind: string, opts: ClientOptions): Promise<void> {
  // Fail fast on a bad token or an unknown connection, before anyone connects locally.
  const info = await apiRequest<Info>(opts, "GET", "api/v1/info");
  const { connections } = await apiRequest<{ connections: { name: string }[] }>(opts, "GET", "api/v1/connections");
  if (!connections.some((c) => c.name === connection)) {
    throw new Error(
      `unknown connection "${connection}" (known: ${connections.map((c) => c.name).join(", ") || "none"})`,
    );
  }
  const creds = info.grpc.tls
    ? grpc.credentials.createSsl(opts.ca ? readFileSync(opts.ca) : null)
    : grpc.credentials.createInsecure();
  const grpcClient = new ConnectClient(info.grpc.address, creds, CLIENT_CHANNEL_OPTIONS);
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    void serve(socket, grpcClient, connection, opts.token!);
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(port, bind, resolve));
  const addr = server.address();
  const actual = typeof addr === "object" && addr ? addr.port : port;
  process.stderr.write(`vigil connect: listening on ${bind}:${actual} → ${connection} (via ${info.grpc.address})\n`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop).once("SIGTERM", stop);
  });
  grpcClient.close();
}

async function serve(socket: Socket, client: ClientServiceClient, connection: string, token: string): Promise<void> {
  socket.pause();
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const call = client.connect(metadata);
  call.on("error", () => {}); // reported through the first frame or the FrameDuplex below
  call.write({ frame: { $case: "open", value: { connection } } });
  try {
    const first = await readFirstFrame(call, "hub_unavailable", 30_000);
    const refused = errorFromFrame(first);
    if (refused) throw refused;
    if (first.frame?.$case !== "established")
      throw new VigilError("protocol_error", "hub did not establish the session");
    const { sessionId, relayId, segment } = first.frame.value;
    process.stderr.write(`vigil connect: session ${sessionId} via relay ${relayId} (segment ${segment})\n`);
    const tunnel = new FrameDuplex(call, { lostCode: "hub_unavailable", peer: "hub" });
    // Reset rather than close the local socket on failure, so the client sees an error, not a clean end.
    tunnel.on("error", () => socket.resetAndDestroy());
    await pipeline(socket, tunnel, socket);
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(
      `vigil connect: session to ${connection} failed: ${e.code ? `${e.code}: ` : ""}${e.message}\n`,
    );
    socket.resetAndDestroy();
    call.cancel();
  }
}
