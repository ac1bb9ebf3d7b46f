import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import type { Command } from "commander";
import { dialableAddress, parseHostPort } from "../../lib/address.js";
import { dataDir, loadConfig } from "../../lib/config/load.js";
import { tuneGcForRelaying } from "../../lib/gc-tuning.js";
import type { Config } from "../../lib/config/schema.js";
import { createLogger, type Logger } from "../../lib/log.js";
import type { Hub } from "../../hub/src/hub.js";
import type { Relay } from "../../relay-agent/src/relay.js";

// The servers load on demand: client commands (sessions, verify, token …) start without compiling them.
const hubModule = () => import("../../hub/src/hub.js");
const relayModule = () => import("../../relay-agent/src/relay.js");

const ADMIN_TOKEN_TTL_SECONDS = 30 * 86400;

export function serverCommands(program: Command): void {
  program
    .command("up")
    .description("run the hub and one relay (segment local) in one process, with embedded storage")
    .option("--config <file>", "YAML config file (every key also settable as VIGIL_*)")
    .action(async (opts: { config?: string }) => {
      tuneGcForRelaying();
      const config = loadConfig({ file: opts.config, env: process.env });
      const log = createLogger(config.log.level);
      const hub = await (await hubModule()).startHub(config, log);
      const relayConfig: Config = {
        ...config,
        relay: {
          ...config.relay!,
          id: config.relay?.id ?? "local",
          hub: dialableAddress(hub.grpcAddress),
          hubs: undefined,
          token: hub.enrollmentToken,
        },
      };
      // Hub and relay share this process: tunnels between them skip gRPC (same checks, no loopback
      // hop), and recordings go straight into the hub's store (no NATS).
      const sink = config.storage.nats ? undefined : hub.localRecordingSink();
      const relay = await (await relayModule()).startRelay(relayConfig, log, { inProcessHub: hub, sink });
      await relay.ready;
      const tokenFile = join(dataDir(config), "admin.token");
      const admin = await hub.tokens.issue("admin", [...config.identity.adminGroups], ADMIN_TOKEN_TTL_SECONDS);
      writeFileSync(tokenFile, admin.token + "\n", { mode: 0o600 });
      process.stdout.write(banner(hub, relayConfig, tokenFile));
      await untilSignal(log, async () => {
        await relay.drain("vigil up is stopping");
        await hub.close();
      });
    });

  program
    .command("hub")
    .description("run a hub: API, front doors and the gRPC endpoint relays dial")
    .option("--config <file>", "YAML config file (every key also settable as VIGIL_*)")
    .action(async (opts: { config?: string }) => {
      tuneGcForRelaying();
      const config = loadConfig({ file: opts.config, env: process.env });
      const log = createLogger(config.log.level);
      const hub = await (await hubModule()).startHub(config, log);
      process.stdout.write(`vigil hub ${hub.id}: API ${hub.apiUrl}, gRPC ${hub.grpcAddress}\n`);
      await untilSignal(log, () => hub.close());
    });

  program
    .command("ingest")
    .description("run a recording ingest worker: JetStream → ClickHouse, batched, idempotent")
    .option("--config <file>", "YAML config file (every key also settable as VIGIL_*)")
    .action(async (opts: { config?: string }) => {
      const config = loadConfig({ file: opts.config, env: process.env });
      const log = createLogger(config.log.level);
      const worker = await (await hubModule()).startIngestWorker(config, log);
      process.stdout.write(`vigil ingest: ${config.storage.nats!.url} → ${worker.store}\n`);
      await untilSignal(log, () => worker.stop());
    });

  program
    .command("relay")
    .description("run a relay: dial the hub, serve the configured connections")
    .option("--config <file>", "YAML config file (every key also settable as VIGIL_*)")
    .action(async (opts: { config?: string }) => {
      tuneGcForRelaying();
      const config = loadConfig({ file: opts.config, env: process.env });
      const log = createLogger(config.log.level);
      const relay = await (await relayModule()).startRelay(config, log);
      await untilSignal(log, () => relay.drain("received a stop signal"), relay);
    });
}

/** Run until SIGINT/SIGTERM (graceful `stop`), a second signal exits at once. */
async function untilSignal(log: Logger, stop: () => Promise<void>, relay?: Relay): Promise<void> {
  const signalled = new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      log.info({ signal: sig }, "stopping");
      process.once("SIGINT", () => process.exit(130)).once("SIGTERM", () => process.exit(143));
      resolve();
    };
    process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  });
  try {
    await Promise.race([signalled, relay?.closed ?? new Promise<never>(() => {})]);
  } catch (err) {
    if (err instanceof (await relayModule()).EnrollmentRejected) {
      process.stderr.write(`vigil relay: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  await stop();
  process.exit(0);
}

function banner(hub: Hub, config: Config, tokenFile: string): string {
  const rel = relative(process.cwd(), tokenFile) || tokenFile;
  const connections = config.relay?.connections ?? [];
  const hubFlag = hub.apiUrl === "http://127.0.0.1:8080" ? "" : ` --hub ${hub.apiUrl}`;
  const pgDoor = parseHostPort(hub.postgresAddress);
  const postgres = connections.find((c) => c.type === "postgres");
  const tcp = connections.find((c) => c.type === "tcp");
  const ssh = connections.find((c) => c.type === "ssh");
  const sshDoor = parseHostPort(hub.sshAddress);
  const connect = [`  export VIGIL_TOKEN=$(cat ${rel})`];
  if (postgres) {
    connect.push(
      `  PGPASSWORD=$VIGIL_TOKEN psql "host=${pgDoor.host} port=${pgDoor.port} user=${postgres.name} dbname=postgres sslmode=require"`,
    );
  }
  if (ssh) {
    connect.push(`  ssh -J vigil@${sshDoor.host}:${sshDoor.port} <user>@${ssh.name}   # password: the token`);
  }
  if (tcp || (!postgres && !ssh)) {
    connect.push(
      `  npx vigil connect ${tcp?.name ?? "<connection>"} --port 6543${hubFlag}`,
      `  psql "host=127.0.0.1 port=6543 user=postgres"`,
    );
  }
  return [
    `Vigil is up: hub ${hub.id}, relay ${config.relay!.id} (segment ${config.relay!.segment}), storage ${dataDir(config)}`,
    `  API          ${hub.apiUrl}`,
    `  gRPC         ${hub.grpcAddress}`,
    `  postgres     ${hub.postgresAddress} (TLS; user = connection, password = token)`,
    `  ssh          ${hub.sshAddress} (jump host: ssh -J; password = token, or a key from vigil ssh-key add)`,
    `  connections  ${connections.map((c) => `${c.name} (${c.type} → ${c.target})`).join(", ") || "none configured"}`,
    `  admin token  ${rel}`,
    ``,
    `Connect:`,
    ...connect,
    ``,
  ].join("\n");
}
