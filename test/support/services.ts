// Real PostgreSQL, NATS and sshd servers for tests: each on a free loopback port, in its own temp dir.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import {
  appendFile,
  chmod,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const LOOPBACK = "127.0.0.1";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const SSHD = "/usr/sbin/sshd";
const NATS_SERVER = existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server";
const IS_ROOT = process.getuid?.() === 0;
const GRACE_MS = 5_000;
const LOG_TAIL_LINES = 40;

export interface ServiceHandle {
  /** Graceful stop, SIGKILL after a timeout, then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Registry of live services: lets a signal handler stop everything, and the exit hook kill
// whatever is left so a crashed or aborted run never leaves servers behind.

interface LiveService {
  readonly name: string;
  readonly dir: string;
  pids(): number[];
  stop(): Promise<void>;
}

const live = new Set<LiveService>();

process.on("exit", () => {
  for (const service of live) {
    for (const pid of service.pids()) killQuietly(pid, "SIGKILL");
    rmSync(service.dir, { recursive: true, force: true });
  }
});

/** Names of services started and not yet stopped (to report leaks). */
export function liveServiceNames(): string[] {
  return [...live].map((service) => service.name);
}

/** Stops every service still running, including ones a test forgot to stop. */
export async function stopAllServices(): Promise<void> {
  await Promise.allSettled([...live].map((service) => service.stop()));
}

function register(service: Omit<LiveService, "stop">, stopImpl: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const entry: LiveService = {
    ...service,
    stop: () => {
      stopping ??= stopImpl().finally(() => live.delete(entry));
      return stopping;
    },
  };
  live.add(entry);
  return entry.stop;
}

// ---------------------------------------------------------------------------------------------
// Small process and network helpers.

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

export function canConnect(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host, timeout: 1_000 });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("timeout", () => done(false));
  });
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a command to completion and collects its output; never throws on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? 30_000,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
    // A command that exits without reading its input must not crash the test process (EPIPE).
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs a setup command, appending its output to the service log; throws when it fails. */
async function runLogged(logPath: string, cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<void> {
  const result = await run(cmd, args, opts);
  const name = args[0] === "-u" ? `${args[3] ?? cmd} (via runuser)` : cmd;
  await appendFile(logPath, `$ ${name} exited ${result.code}\n${result.stdout}${result.stderr}`);
  if (result.code !== 0) throw new Error(`${name} exited with code ${result.code}`);
}

/** Spawns a long-running server with stdout/stderr appended to logPath. */
async function spawnDaemon(cmd: string, args: readonly string[], logPath: string): Promise<ChildProcess> {
  const log = await open(logPath, "a");
  try {
    const child = spawn(cmd, args, { stdio: ["ignore", log.fd, log.fd] });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    });
    return child;
  } finally {
    await log.close();
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function exited(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Resolves true if the promise settles within ms; clears its timer so it never holds the event loop. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM, then SIGKILL if the process is still there after the grace period. */
async function terminate(child: ChildProcess, graceMs = GRACE_MS): Promise<void> {
  if (hasExited(child)) return;
  child.kill("SIGTERM");
  if (await settlesWithin(exited(child), graceMs)) return;
  child.kill("SIGKILL");
  await exited(child);
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function waitUntil(
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  alive = () => true,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if (!alive()) throw new Error(`${what}: the process exited before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function logTail(logPath: string): Promise<string> {
  try {
    const lines = (await readFile(logPath, "utf8")).trimEnd().split("\n");
    return lines.slice(-LOG_TAIL_LINES).join("\n");
  } catch {
    return "(no log written)";
  }
}

async function startFailure(service: string, logPath: string, cause: unknown): Promise<Error> {
  const reason = cause instanceof Error ? cause.message : String(cause);
  const tail = await logTail(logPath);
  return new Error(
    `${service} failed to start: ${reason}\n--- last ${LOG_TAIL_LINES} lines of ${logPath} ---\n${tail}`,
    {
      cause,
    },
  );
}

function makeTempDir(service: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `vigil-${service}-`));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export interface PostgresOptions {
  /** SCRAM-SHA-256 (default) or, when false, MD5 password authentication over TCP. */
  scram?: boolean;
  /** Password of the `postgres` role; random by default. */
  password?: string;
  /** pg_hba.conf lines placed before the default ones (the first matching line wins). */
  hba?: string[];
  /** Server certificate and key (PEM files) to turn TLS on with; they are copied into the data dir. */
  ssl?: { cert: string; key: string };
}

export interface PostgresHandle extends ServiceHandle {
  host: string;
  port: number;
  user: "postgres";
  password: string;
  socketDir: string;
  dataDir: string;
  url: string;
}

interface PostgresLayout {
  dir: string;
  dataDir: string;
  socketDir: string;
  logPath: string;
  port: number;
}

// initdb and pg_ctl refuse to run as root.
function asPostgresOwner(cmd: string, args: readonly string[]): [string, string[]] {
  return IS_ROOT ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, [...args]];
}

async function postgresOwnerIds(): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
  if (uid.code !== 0 || gid.code !== 0) throw new Error("running as root but there is no `postgres` OS user");
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function preparePostgresDirs(layout: PostgresLayout): Promise<void> {
  await mkdir(layout.socketDir);
  await writeFile(layout.logPath, "");
  if (!IS_ROOT) return;
  // The data dir's parent, the socket dir and the log must belong to the server's user.
  const { uid, gid } = await postgresOwnerIds();
  await Promise.all([layout.dir, layout.socketDir, layout.logPath].map((path) => chown(path, uid, gid)));
}

function pgCtl(layout: PostgresLayout, args: readonly string[], timeoutMs = 60_000): Promise<void> {
  const [cmd, fullArgs] = asPostgresOwner(`${PG_BIN}/pg_ctl`, ["-D", layout.dataDir, ...args]);
  return runLogged(layout.logPath, cmd, fullArgs, { cwd: layout.dir, timeoutMs });
}

async function initPostgres(layout: PostgresLayout, opts: PostgresOptions): Promise<void> {
  const scram = opts.scram ?? true;
  const initdbArgs = [
    "-D",
    layout.dataDir,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--locale=C.UTF-8",
    "--no-sync",
  ];
  const [cmd, args] = asPostgresOwner(`${PG_BIN}/initdb`, initdbArgs);
  await runLogged(layout.logPath, cmd, args, { cwd: layout.dir, timeoutMs: 120_000 });
  const method = scram ? "scram-sha-256" : "md5";
  const settings = [
    `listen_addresses = '${LOOPBACK}'`,
    `port = ${layout.port}`,
    `unix_socket_directories = '${layout.socketDir}'`,
    "max_connections = 200",
    "shared_buffers = 32MB",
    // Throwaway clusters: durability only costs time.
    "fsync = off",
    "synchronous_commit = off",
    "full_page_writes = off",
    `password_encryption = '${method}'`,
  ];
  if (opts.ssl) {
    await installServerCert(layout, opts.ssl);
    settings.push("ssl = on");
  }
  await appendFile(join(layout.dataDir, "postgresql.conf"), `\n${settings.join("\n")}\n`);
  // Local socket stays trusted so the harness can set the password; TCP always needs it.
  const hba = [...(opts.hba ?? []), "local all all trust", `host all all ${LOOPBACK}/32 ${method}`];
  await writeFile(join(layout.dataDir, "pg_hba.conf"), `${hba.join("\n")}\n`);
}

/** As server.crt/server.key (the defaults of ssl_cert_file/ssl_key_file); postgres insists on owning a private key. */
async function installServerCert(layout: PostgresLayout, ssl: { cert: string; key: string }): Promise<void> {
  const cert = join(layout.dataDir, "server.crt");
  const key = join(layout.dataDir, "server.key");
  await Promise.all([copyFile(ssl.cert, cert), copyFile(ssl.key, key)]);
  await chmod(key, 0o600);
  if (!IS_ROOT) return;
  const { uid, gid } = await postgresOwnerIds();
  await Promise.all([cert, key].map((path) => chown(path, uid, gid)));
}

async function setPostgresPassword(layout: PostgresLayout, password: string): Promise<void> {
  // The password travels in the environment, never on a command line or inside SQL text.
  const script = "\\getenv pw VIGIL_NEW_PASSWORD\nALTER ROLE postgres PASSWORD :'pw';\n";
  const args = [
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-h",
    layout.socketDir,
    "-p",
    String(layout.port),
    "-U",
    "postgres",
    "-d",
    "postgres",
  ];
  const env = { ...process.env, VIGIL_NEW_PASSWORD: password };
  await runLogged(layout.logPath, `${PG_BIN}/psql`, args, { input: script, env, cwd: layout.dir });
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function stopPostgres(layout: PostgresLayout, pid: number | undefined): Promise<void> {
  try {
    await pgCtl(layout, ["stop", "-m", "fast", "-w", "-t", String(GRACE_MS / 1000)], GRACE_MS + 5_000);
  } catch {
    // Fall through to SIGKILL below.
  }
  if (pid !== undefined && isAlive(pid)) {
    killQuietly(pid, "SIGKILL");
    await waitUntil("postgres SIGKILL", async () => !isAlive(pid), GRACE_MS);
  }
  await rm(layout.dir, { recursive: true, force: true });
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const password = opts.password ?? randomBytes(16).toString("hex");
  const dir = await makeTempDir("pg");
  const layout: PostgresLayout = {
    dir,
    dataDir: join(dir, "data"),
    socketDir: join(dir, "sock"),
    logPath: join(dir, "postgres.log"),
    port: await freePort(),
  };
  let pid: number | undefined;
  const stop = register({ name: `postgres:${layout.port}`, dir, pids: () => (pid === undefined ? [] : [pid]) }, () =>
    stopPostgres(layout, pid),
  );
  try {
    await preparePostgresDirs(layout);
    await initPostgres(layout, opts);
    await pgCtl(layout, ["-l", layout.logPath, "-w", "-t", "60", "start"], 90_000);
    pid = await postmasterPid(layout.dataDir);
    await setPostgresPassword(layout, password);
  } catch (error) {
    const failure = await startFailure("postgres", layout.logPath, error);
    await stop();
    throw failure;
  }
  const url = `postgres://postgres:${encodeURIComponent(password)}@${LOOPBACK}:${layout.port}/postgres`;
  const { port, socketDir, dataDir } = layout;
  return { host: LOOPBACK, port, user: "postgres", password, socketDir, dataDir, url, stop };
}

// ---------------------------------------------------------------------------------------------
// NATS (JetStream)

export interface NatsHandle extends ServiceHandle {
  url: string;
  port: number;
  storeDir: string;
  /** Stops the server if it runs, then starts it again on the same port and store dir. */
  restart(): Promise<void>;
  /** SIGKILL, keeping the store dir (simulates a crash). */
  kill(): Promise<void>;
}

async function logSize(logPath: string): Promise<number> {
  try {
    return (await stat(logPath)).size;
  } catch {
    return 0;
  }
}

async function logSince(logPath: string, offset: number): Promise<string> {
  return (await readFile(logPath)).subarray(offset).toString("utf8");
}

async function launchNats(port: number, storeDir: string, logPath: string): Promise<ChildProcess> {
  const offset = await logSize(logPath);
  const args = ["-a", LOOPBACK, "-p", String(port), "-js", "-sd", storeDir];
  const child = await spawnDaemon(NATS_SERVER, args, logPath);
  try {
    const ready = async (): Promise<boolean> =>
      (await logSince(logPath, offset)).includes("Server is ready") && (await canConnect(port));
    await waitUntil("nats-server", ready, 20_000, () => !hasExited(child));
    return child;
  } catch (error) {
    await terminate(child);
    throw error;
  }
}

export async function startNats(): Promise<NatsHandle> {
  const dir = await makeTempDir("nats");
  const storeDir = join(dir, "store");
  const logPath = join(dir, "nats.log");
  const port = await freePort();
  let child: ChildProcess | undefined;
  const running = (): ChildProcess | undefined => (child !== undefined && !hasExited(child) ? child : undefined);
  const pids = (): number[] => {
    const pid = running()?.pid;
    return pid === undefined ? [] : [pid];
  };
  const stop = register({ name: `nats:${port}`, dir, pids }, async () => {
    if (child) await terminate(child);
    await rm(dir, { recursive: true, force: true });
  });
  const launch = async (): Promise<void> => {
    try {
      child = await launchNats(port, storeDir, logPath);
    } catch (error) {
      throw await startFailure("nats-server", logPath, error);
    }
  };
  try {
    await launch();
  } catch (error) {
    await stop();
    throw error;
  }
  const restart = async (): Promise<void> => {
    if (child) await terminate(child);
    await launch();
  };
  const kill = async (): Promise<void> => {
    const current = running();
    if (!current) return;
    current.kill("SIGKILL");
    await exited(current);
  };
  return { url: `nats://${LOOPBACK}:${port}`, port, storeDir, stop, restart, kill };
}

// ---------------------------------------------------------------------------------------------
// sshd

export interface SshdHandle extends ServiceHandle {
  host: string;
  port: number;
  user: string;
  /** ed25519 private key authorised for `user`. */
  clientKeyPath: string;
  hostKeyPath: string;
  /** `ssh-ed25519 AAAA...` line of the server's host key. */
  hostPublicKey: string;
  /** sshd's own log (stderr, level INFO). */
  logPath: string;
}

export interface SshTarget {
  host?: string;
  port: number;
  user: string;
  clientKeyPath: string;
}

/** Arguments for the OpenSSH client to run `command` on the target non-interactively. */
export function sshClientArgs(target: SshTarget, ...command: string[]): string[] {
  return [
    ...["-i", target.clientKeyPath, "-p", String(target.port)],
    ...["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    ...["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"],
    `${target.user}@${target.host ?? LOOPBACK}`,
    ...command,
  ];
}

async function generateKey(path: string, logPath: string): Promise<void> {
  await runLogged(logPath, "ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "vigil-test", "-f", path]);
}

function sshdConfig(dir: string, port: number): string {
  return [
    `Port ${port}`,
    `ListenAddress ${LOOPBACK}`,
    `HostKey ${join(dir, "host_ed25519")}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no",
    "UsePAM no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    "PermitRootLogin prohibit-password",
    "PrintMotd no",
    "PrintLastLog no",
    // Tests open many connections at once; the default (10:30:100) drops some of them.
    "MaxStartups 200",
    "MaxSessions 100",
    "Subsystem sftp internal-sftp",
    // Tests show which client environment reaches a target: these names sshd would take.
    "AcceptEnv VIGIL_TEST_* BASH_ENV",
    "",
  ].join("\n");
}

async function prepareSshd(dir: string, port: number, logPath: string): Promise<string> {
  await Promise.all([
    generateKey(join(dir, "host_ed25519"), logPath),
    generateKey(join(dir, "client_ed25519"), logPath),
  ]);
  await writeFile(join(dir, "authorized_keys"), await readFile(join(dir, "client_ed25519.pub")));
  const configPath = join(dir, "sshd_config");
  await writeFile(configPath, sshdConfig(dir, port));
  // "Missing privilege separation directory" otherwise; only root can (and needs to) create it.
  if (IS_ROOT) await mkdir("/run/sshd", { recursive: true });
  return configPath;
}

async function sshWorks(target: SshTarget): Promise<boolean> {
  const result = await run("ssh", sshClientArgs(target, "true"), { timeoutMs: 5_000 });
  return result.code === 0;
}

export async function startSshd(): Promise<SshdHandle> {
  const dir = await makeTempDir("sshd");
  const logPath = join(dir, "sshd.log");
  const port = await freePort();
  const user = IS_ROOT ? "root" : userInfo().username;
  const clientKeyPath = join(dir, "client_ed25519");
  const hostKeyPath = join(dir, "host_ed25519");
  let child: ChildProcess | undefined;
  const stop = register({ name: `sshd:${port}`, dir, pids: () => (child?.pid ? [child.pid] : []) }, async () => {
    if (child) await terminate(child);
    await rm(dir, { recursive: true, force: true });
  });
  try {
    const configPath = await prepareSshd(dir, port, logPath);
    // sshd re-executes itself and insists on an absolute path.
    const sshd = await spawnDaemon(SSHD, ["-D", "-e", "-f", configPath], logPath);
    child = sshd;
    await waitUntil(
      "sshd",
      () => sshWorks({ port, user, clientKeyPath }),
      20_000,
      () => !hasExited(sshd),
    );
  } catch (error) {
    const failure = await startFailure("sshd", logPath, error);
    await stop();
    throw failure;
  }
  const hostPublicKey = (await readFile(`${hostKeyPath}.pub`, "utf8")).trim();
  return { host: LOOPBACK, port, user, clientKeyPath, hostKeyPath, hostPublicKey, logPath, stop };
}
