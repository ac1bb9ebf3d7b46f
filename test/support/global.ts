// Mocha global fixtures: one PostgreSQL (SCRAM), one NATS and one sshd for the whole run.
import { TEST_ENV, type TestEnvKey } from "./env.js";
import {
  liveServiceNames,
  startNats,
  startPostgres,
  startSshd,
  stopAllServices,
  type NatsHandle,
  type PostgresHandle,
  type ServiceHandle,
  type SshdHandle,
} from "./services.js";

let shared: ServiceHandle[] = [];

function publish(pg: PostgresHandle, nats: NatsHandle, sshd: SshdHandle): void {
  const values: Record<TestEnvKey, string> = {
    pgHost: pg.host,
    pgPort: String(pg.port),
    pgUser: pg.user,
    pgPassword: pg.password,
    pgUrl: pg.url,
    natsUrl: nats.url,
    sshdPort: String(sshd.port),
    sshdUser: sshd.user,
    sshdKey: sshd.clientKeyPath,
    sshdHostPublicKey: sshd.hostPublicKey,
    sshdLog: sshd.logPath,
  };
  for (const [key, value] of Object.entries(values) as [TestEnvKey, string][]) process.env[TEST_ENV[key]] = value;
}

// The mocha wrapper forwards Ctrl-C as SIGINT then SIGTERM; pg_ctl puts postgres in its own
// session, so without this it would outlive the run.
let signalled = false;
async function onSignal(signal: NodeJS.Signals): Promise<void> {
  if (signalled) return;
  signalled = true;
  await stopAllServices();
  process.exit(signal === "SIGINT" ? 130 : 143);
}

// With output piped into a reader that quits early (`npm test | head`), the EPIPE would kill the
// process before teardown and leave the servers behind; keep running and clean up instead.
function ignoreClosedOutput(error: NodeJS.ErrnoException): void {
  if (error.code !== "EPIPE") throw error;
}

async function startAll(): Promise<[PostgresHandle, NatsHandle, SshdHandle]> {
  const results = await Promise.allSettled([startPostgres({ scram: true }), startNats(), startSshd()] as const);
  const [pg, nats, sshd] = results;
  if (pg.status === "fulfilled" && nats.status === "fulfilled" && sshd.status === "fulfilled") {
    return [pg.value, nats.value, sshd.value];
  }
  await stopAllServices();
  const reasons = results.flatMap((r) =>
    r.status === "rejected" ? [String(r.reason instanceof Error ? r.reason.message : r.reason)] : [],
  );
  throw new Error(`test services failed to start:\n${reasons.join("\n\n")}`);
}

export async function mochaGlobalSetup(): Promise<void> {
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.stdout.on("error", ignoreClosedOutput);
  process.stderr.on("error", ignoreClosedOutput);
  const [pg, nats, sshd] = await startAll();
  shared = [pg, nats, sshd];
  publish(pg, nats, sshd);
}

export async function mochaGlobalTeardown(): Promise<void> {
  await Promise.allSettled(shared.map((service) => service.stop()));
  shared = [];
  const leaked = liveServiceNames();
  if (leaked.length > 0) {
    console.warn(`warning: tests left services running, stopping them now: ${leaked.join(", ")}`);
    await stopAllServices();
  }
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}
