import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { freePort } from "./services.js";
import { api, eventually, spawnVigil, type VigilProcess, type Workdir } from "./vigil.js";

export interface HubHandle {
  proc: VigilProcess;
  /** Directory of the hub's policy files (policies: [<dir>/*.yaml]); tests edit files here. */
  policyDir: string;
  api: string;
  grpc: string;
  grpcPort: number;
  apiPort: number;
  /** The postgres front door (TLS with the hub's self-signed certificate). */
  pgPort: number;
  /** The SSH jump host. */
  sshPort: number;
  enrollmentToken: string;
  configFile: string;
  adminToken: string;
}

const ENROLLMENT = "test-enrollment-token-0123456789";

/** The policy mesh tests run under: anyone may connect anywhere, no command rules. */
export const ALLOW_ALL = "policies:\n  - name: tests-connect\n    connect: true\n";

/** Start a real `vigil hub` process on fixed free ports (so a restart keeps its address). */
export async function startHubProcess(
  dir: Workdir,
  opts: {
    name?: string;
    apiPort?: number;
    grpcPort?: number;
    pgPort?: number;
    sshPort?: number;
    extra?: object;
    env?: Record<string, string>;
    policy?: string;
  } = {},
): Promise<HubHandle> {
  const name = opts.name ?? "hub";
  const policyDir = dir.file(`${name}-policies`);
  mkdirSync(policyDir, { recursive: true });
  if (!existsSync(join(policyDir, "test.yaml"))) writeFileSync(join(policyDir, "test.yaml"), opts.policy ?? ALLOW_ALL);
  // A port found free can be taken by someone else before the hub binds it: try again with new
  // ones (only for ports this helper chose; a restart on the same ports must get those).
  const chosen = opts.apiPort === undefined && opts.grpcPort === undefined;
  let apiPort = 0;
  let grpcPort = 0;
  let pgPort = 0;
  let sshPort = 0;
  let configFile = "";
  let proc: VigilProcess | undefined;
  for (let attempt = 1; ; attempt++) {
    apiPort = opts.apiPort ?? (await freePort());
    grpcPort = opts.grpcPort ?? (await freePort());
    pgPort = opts.pgPort ?? (await freePort());
    sshPort = opts.sshPort ?? (await freePort());
    configFile = dir.writeConfig(`${name}.yaml`, {
      listen: {
        api: `127.0.0.1:${apiPort}`,
        grpc: `127.0.0.1:${grpcPort}`,
        postgres: `127.0.0.1:${pgPort}`,
        ssh: `127.0.0.1:${sshPort}`,
      },
      storage: { embedded: { path: dir.file(`${name}-data`) } },
      enrollment: { token: ENROLLMENT },
      hub: { id: name, heartbeatMs: 500 },
      policies: [join(policyDir, "*.yaml")],
      ...opts.extra,
    });
    proc = spawnVigil(name, ["hub", "--config", configFile], opts.env);
    try {
      await proc.waitFor(/gRPC 127\.0\.0\.1:\d+/);
      break;
    } catch (err) {
      if (!chosen || attempt >= 3 || !proc.stderr.includes("EADDRINUSE")) throw err;
      await proc.stop();
    }
  }
  const scheme = (opts.extra as { tls?: unknown } | undefined)?.tls ? "https" : "http";
  const handle: HubHandle = {
    proc,
    policyDir,
    api: `${scheme}://127.0.0.1:${apiPort}`,
    grpc: `127.0.0.1:${grpcPort}`,
    grpcPort,
    apiPort,
    pgPort,
    sshPort,
    enrollmentToken: ENROLLMENT,
    configFile,
    adminToken: "",
  };
  const mint = spawnVigil("token create --config", [
    "token",
    "create",
    "--config",
    configFile,
    "--name",
    "admin",
    "--groups",
    "vigil-admins",
    "--ttl",
    "1h",
  ]);
  const { code } = await mint.exited;
  if (code !== 0) throw new Error(`offline token create failed: ${mint.stderr}`);
  handle.adminToken = mint.stdout.trim();
  return handle;
}

export interface RelayOptions {
  id: string;
  hub: string;
  connections: {
    name: string;
    type: string;
    target: string;
    labels?: Record<string, string>;
    credentials?: Record<string, unknown>;
  }[];
  token?: string;
  keyFile?: string;
  segment?: string;
  extra?: object;
  /** The relay's storage section (default: embedded, recordings kept on its disk). */
  storage?: object;
  /** Other top-level config sections (e.g. recording). */
  topLevel?: object;
}

export function startRelayProcess(dir: Workdir, opts: RelayOptions): VigilProcess {
  const configFile = dir.writeConfig(`relay-${opts.id}-${Math.random().toString(36).slice(2, 8)}.yaml`, {
    relay: {
      id: opts.id,
      hub: opts.hub,
      token: opts.token ?? ENROLLMENT,
      segment: opts.segment ?? "local",
      keyFile: opts.keyFile ?? dir.file(`relay-${opts.id}.key`),
      heartbeatMs: 500,
      reconnect: { initialMs: 200, maxMs: 1000 },
      drainTimeoutMs: 20_000,
      connections: opts.connections,
      ...opts.extra,
    },
    storage: opts.storage ?? { embedded: { path: dir.file(`relay-${opts.id}-data`) } },
    ...opts.topLevel,
  });
  return spawnVigil(`relay ${opts.id}`, ["relay", "--config", configFile]);
}

/** Issue a token through the real CLI (`vigil token create`), using a hub-signed admin token. */
export async function createToken(
  hub: HubHandle,
  adminToken: string,
  name: string,
  groups: string[] = [],
  env: Record<string, string> = {},
): Promise<string> {
  const proc = spawnVigil(
    "token create",
    ["token", "create", "--name", name, "--groups", groups.join(","), "--ttl", "1h", "--hub", hub.api],
    {
      VIGIL_TOKEN: adminToken,
      ...env,
    },
  );
  const { code } = await proc.exited;
  if (code !== 0) throw new Error(`vigil token create failed (${code}): ${proc.stderr}`);
  return proc.stdout.trim();
}

export async function relayStatus(hub: HubHandle, token: string, id: string): Promise<string | undefined> {
  const res = await api(hub.api, "/api/v1/relays", token);
  const relays = res.body.relays as { id: string; status: string }[];
  return relays.find((r) => r.id === id)?.status;
}

/** Wait until the hub lists relay `id` with `status` (default online). */
export function waitForRelay(hub: HubHandle, id: string, status = "online", timeoutMs = 45_000): Promise<true> {
  return eventually(
    `relay ${id} ${status} at ${hub.api}`,
    async () => ((await relayStatus(hub, hub.adminToken, id)) === status ? true : undefined),
    timeoutMs,
  );
}

/** Start `vigil connect <connection> --port N` and wait until it listens. */
export async function startConnect(
  hub: HubHandle,
  token: string,
  connection: string,
  port: number,
  env: Record<string, string> = {},
): Promise<VigilProcess> {
  const proc = spawnVigil(`connect ${connection}`, ["connect", connection, "--port", String(port), "--hub", hub.api], {
    VIGIL_TOKEN: token,
    ...env,
  });
  await proc.waitFor(/listening on 127\.0\.0\.1:\d+/);
  return proc;
}

/** Open a TCP connection and resolve once connected. */
export function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Send `payload` through a socket to an echo target and read the same number of bytes back. */
export function echoRoundTrip(socket: Socket, payload: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`echo timed out after ${got}/${payload.length} bytes`)), timeoutMs);
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= payload.length) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on("data", onData);
    socket.once("error", (e) => (clearTimeout(timer), reject(e)));
    socket.once(
      "close",
      () => got < payload.length && (clearTimeout(timer), reject(new Error(`closed after ${got} bytes`))),
    );
    socket.write(payload);
  });
}
