import { createServer, type Server, type Socket } from "node:net";
import { cpus } from "node:os";
import type { BenchResult } from "./run.js";
import { freePort } from "../test/support/services.js";
import { echoServer } from "../test/support/targets.js";
import { eventually, Workdir } from "../test/support/vigil.js";
import { createToken, dial, relayStatus, startConnect, startHubProcess, startRelayProcess } from "../test/support/mesh.js";

const TRANSFER_BYTES = 1024 * 1024 * 1024;
const ECHO_SIZE = 1024;
const ECHO_ROUNDS = 5000;

/** A server that sends TRANSFER_BYTES from one preallocated buffer, so the source costs nothing. */
async function blastServer(): Promise<{ server: Server; address: string }> {
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const server = createServer((s) => {
    let left = TRANSFER_BYTES;
    const write = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", write);
      }
      s.end();
    };
    s.on("error", () => {});
    write();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, address: `127.0.0.1:${(server.address() as { port: number }).port}` };
}

async function download(port: number): Promise<number> {
  const socket = await dial(port);
  const t0 = process.hrtime.bigint();
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    socket.on("data", (d: Buffer) => (got += d.length));
    socket.once("end", resolve);
    socket.once("error", reject);
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (got !== TRANSFER_BYTES) throw new Error(`received ${got} of ${TRANSFER_BYTES} bytes`);
  return TRANSFER_BYTES / 1e6 / seconds;
}

/** Round trips of ECHO_SIZE bytes, one at a time; returns sorted latencies in ms. */
async function echoLatencies(socket: Socket): Promise<number[]> {
  const payload = Buffer.alloc(ECHO_SIZE, 0x61);
  const out: number[] = [];
  for (let i = 0; i < ECHO_ROUNDS + 200; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      let got = 0;
      const onData = (d: Buffer) => {
        got += d.length;
        if (got >= ECHO_SIZE) {
          socket.off("data", onData);
          resolve();
        }
      };
      socket.on("data", onData);
      socket.write(payload);
    });
    if (i >= 200) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out.sort((a, b) => a - b);
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

export async function run(): Promise<BenchResult> {
  const dir = new Workdir();
  const blast = await blastServer();
  const echo = await echoServer();
  const hub = await startHubProcess(dir, { env: { VIGIL_LOG_LEVEL: "warn" } });
  const relay = startRelayProcess(dir, {
    id: "bench",
    hub: hub.grpc,
    connections: [
      { name: "blast", type: "tcp", target: blast.address },
      { name: "echo", type: "tcp", target: echo.address },
    ],
  });
  try {
    await eventually("relay online", async () => ((await relayStatus(hub, hub.adminToken, "bench")) === "online" ? true : undefined));
    const token = await createToken(hub, hub.adminToken, "bench");
    const blastPort = await freePort();
    const echoPort = await freePort();
    const c1 = await startConnect(hub, token, "blast", blastPort);
    const c2 = await startConnect(hub, token, "echo", echoPort);

    const directMBs = Math.max(await download(Number(blast.address.split(":")[1])), await download(Number(blast.address.split(":")[1])));
    const vigilMBs = Math.max(await download(blastPort), await download(blastPort));

    const direct = await echoLatencies(await dial(echo.port));
    const via = await echoLatencies(await dial(echoPort));
    await Promise.all([c1.stop(), c2.stop()]);

    return {
      name: "tunnel",
      title: "Tunnel: vigil connect → hub → relay → target (tcp)",
      when: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
      command: "npm run bench -- tunnel",
      rows: [
        { metric: "download 1 GiB", direct: directMBs, vigil: vigilMBs, unit: "MB/s", ratio: vigilMBs / directMBs, better: "higher", target: "≥ 200 MB/s" },
        { metric: "1 KiB echo p50", direct: pct(direct, 50), vigil: pct(via, 50), unit: "ms", ratio: pct(via, 50) / pct(direct, 50), better: "lower", target: `added ≤ 0.3 ms (measured +${(pct(via, 50) - pct(direct, 50)).toFixed(3)} ms)` },
        { metric: "1 KiB echo p99", direct: pct(direct, 99), vigil: pct(via, 99), unit: "ms", ratio: pct(via, 99) / pct(direct, 99), better: "lower" },
      ],
      notes: [
        "Hub, relay and vigil connect are separate processes on the same 2-core machine as the client and target; best of two transfers.",
        `${ECHO_ROUNDS} sequential round trips after 200 warm-up rounds.`,
      ],
    };
  } finally {
    await relay.stop();
    await hub.proc.stop();
    blast.server.close();
    await echo.close();
    dir.cleanup();
  }
}
