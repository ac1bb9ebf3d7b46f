// Probe (not a benchmark of record): what any proxy written in Node costs on this machine, as a floor
// for the postgres benchmark's ratios. pgbench -S and one client's `SELECT 1` latency, direct and
// through proxies that do nothing but move bytes: plain TCP in and out, and TLS from the client (as
// the hub's front door) with plain TCP to PostgreSQL. No parsing, policy or recording.
// `flock /tmp/vigil-bench.lock node --import tsx bench/proxy-floor.ts`; FLOOR_SECONDS (pgbench -T),
// FLOOR_ROUNDS, FLOOR_CLIENTS (pgbench -c, default 8).
import { createServer, connect, type Server, type Socket } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { createServer as createTlsServer } from "node:tls";
import pg from "pg";
import { mkdtempSync, rmSync } from "node:fs";

import { join } from "node:path";
import { selfSignedCert } from "../lib/tls/self-signed.js";
import { freePort, run as runCommand, startPostgres } from "../test/support/services.js";

const SECONDS = Number(process.env.FLOOR_SECONDS ?? 8);
const ROUNDS = Number(process.env.FLOOR_ROUNDS ?? 2);
const CLIENTS = process.env.FLOOR_CLIENTS ?? "8";
const LATENCY_QUERIES = 5000;

function pipeTo(client: Socket, host: string, port: number): void {
  const target = connect({ host, port, noDelay: true });
  client.pipe(target).pipe(client);
  const end = () => (client.destroy(), target.destroy());
  client.on("error", end).on("close", end);
  target.on("error", end).on("close", end);
}

async function listen(server: Server): Promise<number> {
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return port;
}

const certDir = mkdtempSync(join(tmpdir(), "proxy-floor-"));
const { cert, key } = await selfSignedCert(certDir);
// PostgreSQL speaks TLS too, for the direct path with the client's encryption.
const server = await startPostgres({
  ssl: { cert: join(certDir, "front-door.pem"), key: join(certDir, "front-door.key") },
});
const plain = createServer({ noDelay: true }, (s) => pipeTo(s, server.host, server.port));
// PostgreSQL's SSLRequest: answer 'S' to the 8-byte request, then TLS on the same socket.
const tlsServer = createTlsServer({ cert, key });
tlsServer.on("secureConnection", (s) => {
  s.setNoDelay(true);
  pipeTo(s, server.host, server.port);
});
const tlsFront = createServer({ noDelay: true }, (s) => {
  s.once("data", (first) => {
    if (first.length !== 8 || first.readUInt32BE(4) !== 80877103) return s.destroy();
    s.write("S");
    tlsServer.emit("connection", s);
  });
});
const ports = { plain: await listen(plain), tls: await listen(tlsFront) };
const base = { PGHOST: "127.0.0.1", PGUSER: server.user, PGPASSWORD: server.password, PGDATABASE: "postgres" };
const paths = [
  { name: "direct", port: server.port, sslmode: "disable" },
  { name: "direct, TLS", port: server.port, sslmode: "require" },
  { name: "node proxy, plain TCP", port: ports.plain, sslmode: "disable" },
  { name: "node proxy, TLS from the client", port: ports.tls, sslmode: "require" },
];

async function latencies(port: number, ssl: boolean): Promise<number[]> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port,
    user: server.user,
    password: server.password,
    database: "postgres",
    ssl: ssl ? { rejectUnauthorized: false } : false,
  });
  await c.connect();
  const out: number[] = [];
  for (let i = 0; i < LATENCY_QUERIES + 500; i++) {
    const t0 = process.hrtime.bigint();
    await c.query("SELECT 1");
    if (i >= 500) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  await c.end();
  return out.sort((a, b) => a - b);
}

try {
  await runCommand("pgbench", ["-i", "-q", "-s", "10"], {
    env: { ...process.env, ...base, PGPORT: String(server.port) },
    timeoutMs: 600_000,
  });
  for (let round = 0; round < ROUNDS; round++) {
    for (const p of round % 2 ? [...paths].reverse() : paths) {
      const env = { ...process.env, ...base, PGPORT: String(p.port), PGSSLMODE: p.sslmode };
      const cpu0 = process.cpuUsage();
      const r = await runCommand("pgbench", ["-n", "-S", "-c", CLIENTS, "-j", "2", "-T", String(SECONDS)], {
        env,
        timeoutMs: (SECONDS + 60) * 1000,
      });
      const cpu = process.cpuUsage(cpu0);
      const n = Number(/actually processed: (\d+)/.exec(r.stdout)?.[1]);
      const tps = Number(/tps = ([\d.]+) \(without/.exec(r.stdout)?.[1]);
      const lat0 = process.cpuUsage();
      const ms = await latencies(p.port, p.sslmode === "require");
      const lat = process.cpuUsage(lat0);
      const at = (q: number) => ms[Math.floor((ms.length * q) / 100)]!.toFixed(3);
      const proxyCpu = p.name.startsWith("direct")
        ? ""
        : ` proxy cpu/tx ${(((cpu.user + cpu.system) / n) | 0).toString()} us`;
      console.log(
        `${p.name.padEnd(32)} tps ${tps.toFixed(0)}${proxyCpu}; SELECT 1 p50 ${at(50)} p99 ${at(99)} ms ` +
          `(this process, client and proxy: ${(((lat.user + lat.system) / (LATENCY_QUERIES + 500)) | 0).toString()} us/query); ` +
          `load ${loadavg()[0]!.toFixed(1)}`,
      );
    }
  }
} finally {
  plain.close();
  tlsFront.close();
  await server.stop();
  rmSync(certDir, { recursive: true, force: true });
}
process.exit(0);
