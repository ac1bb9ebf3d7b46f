// SSH through Vigil — OpenSSH `ssh -J` → hub jump host → tunnel → relay ssh engine (every command
// judged, the session recorded) → sshd — against the same sshd direct, in the same run: scp
// throughput both ways, and the echo latency a person typing in an interactive shell sees.
// VIGIL_BENCH_KEYS, VIGIL_BENCH_MIB and VIGIL_BENCH_ROUNDS shorten a trial.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { BenchResult, BenchRow } from "./run.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../test/support/mesh.js";
import { freePort, run as runCommand, startSshd, type SshdHandle } from "../test/support/services.js";
import { spawnVigil, Workdir, type VigilProcess } from "../test/support/vigil.js";

const FILE_BYTES = Number(process.env.VIGIL_BENCH_MIB ?? 256) * 1024 * 1024;
const KEYS = Number(process.env.VIGIL_BENCH_KEYS ?? 400);
/** scp rounds; each measures direct and Vigil back to back, and the medians are reported. */
const ROUNDS = Number(process.env.VIGIL_BENCH_ROUNDS ?? 3);
const WARMUP_KEYS = 40;
const ECHO_SCRIPT = fileURLToPath(new URL("ssh-echo.py", import.meta.url));

/** The bench policy (bench/ssh-profile.ts uses it too): connect for agents, one deny rule judged per command. */
export const POLICY = `policies:
  - name: bench-agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-recursive-delete-of-root
        effect: deny
        shell: { commands: [rm], flags: [r, R, recursive], args: ["/"] }
`;

/** How one side is reached: the ssh options before the destination, and the destination. */
interface Path {
  options: string[];
  destination: string;
  env: NodeJS.ProcessEnv;
}

async function check(what: string, p: Promise<{ code: number | null; stderr: string }>): Promise<void> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr.slice(-500)}`);
}

/** The target as a relay connection: the relay logs in with the test key, pinning the host key. */
const webConnection = (sshd: SshdHandle) => ({
  name: "web-1",
  type: "ssh",
  target: `127.0.0.1:${sshd.port}`,
  credentials: { user: sshd.user, privateKeyFile: sshd.clientKeyPath, hostKey: sshd.hostPublicKey },
});

/** `vigil up`: hub and relay in one process (the tunnel between them in memory), the bench policy. */
async function startVigilUp(
  dir: Workdir,
  sshd: SshdHandle,
): Promise<{ proc: VigilProcess; sshPort: number; token: string }> {
  const [api, grpc, ssh] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(dir.file("up-policy.yaml"), POLICY);
  const dataDir = dir.file("up-data");
  const config = dir.writeConfig("up.yaml", {
    listen: {
      api: `127.0.0.1:${api}`,
      grpc: `127.0.0.1:${grpc}`,
      postgres: `127.0.0.1:${await freePort()}`,
      ssh: `127.0.0.1:${ssh}`,
    },
    storage: { embedded: { path: dataDir } },
    policies: [dir.file("up-policy.yaml")],
    log: { level: "warn" },
    relay: { hub: `127.0.0.1:${grpc}`, connections: [webConnection(sshd)] },
  });
  const proc = spawnVigil("vigil up", ["up", "--config", config]);
  await proc.waitFor(/Connect:/, 60_000);
  const admin = readFileSync(`${dataDir}/admin.token`, "utf8").trim();
  const token = await createToken({ api: `http://127.0.0.1:${api}` } as HubHandle, admin, "bench-agent", ["agents"]);
  return { proc, sshPort: ssh, token };
}

/** Seconds for scp of the file up (sftp protocol, OpenSSH's default) and back down. */
async function scpTimes(dir: Workdir, path: Path, source: string, tag: string): Promise<{ up: number; down: number }> {
  const remote = dir.file(`remote-${tag}.bin`);
  const back = dir.file(`back-${tag}.bin`);
  const time = async (args: string[]) => {
    const t0 = performance.now();
    await check(`scp ${tag}`, runCommand("scp", [...path.options, ...args], { env: path.env, timeoutMs: 300_000 }));
    return (performance.now() - t0) / 1000;
  };
  const up = await time([source, `${path.destination}:${remote}`]);
  const down = await time([`${path.destination}:${remote}`, back]);
  if (sha256(back) !== sha256(source)) throw new Error(`scp ${tag}: the file came back different`);
  return { up, down };
}

async function echoLatencies(path: Path): Promise<number[]> {
  const argv = ["ssh", "-tt", ...path.options, path.destination];
  const r = await runCommand("python3", [ECHO_SCRIPT, JSON.stringify(argv), String(KEYS), String(WARMUP_KEYS)], {
    env: path.env,
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`echo latency: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { ms: number[] }).ms.sort((a, b) => a - b);
}

/** CPU seconds (user + system) a process (or with `thread`, one of its threads) has used so far, from /proc. */
function cpuSeconds(pid: number, thread?: number): number {
  const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
  const fields = readFileSync(path, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

/** What `vigil ssh-config` prints for its Host blocks besides ProxyJump and known hosts. */
const SSH_CONFIG_CIPHERS = ["  Ciphers ^aes128-gcm@openssh.com,aes256-gcm@openssh.com"];

function directPath(dir: Workdir, sshd: SshdHandle, extra: string[] = [], name = "direct"): Path {
  const config = dir.file(`${name}.ssh_config`);
  writeFileSync(
    config,
    [
      "Host *",
      ...extra,
      `  IdentityFile ${sshd.clientKeyPath}`,
      `  Port ${sshd.port}`,
      "  IdentitiesOnly yes",
      "  BatchMode yes",
      "  StrictHostKeyChecking no",
      "  UserKnownHostsFile /dev/null",
      "  LogLevel ERROR",
      "",
    ].join("\n"),
  );
  return { options: ["-F", config], destination: `${sshd.user}@127.0.0.1`, env: process.env };
}

function vigilPath(
  dir: Workdir,
  sshd: SshdHandle,
  sshPort: number,
  token: string,
  extra: string[] = [],
  name = "vigil",
): Path {
  // Host * applies to the jump (ProxyJump's own ssh reads this file too) and to the target.
  const config = dir.file(`${name}.ssh_config`);
  writeFileSync(
    config,
    [
      "Host *",
      ...extra,
      "  PubkeyAuthentication no",
      "  PreferredAuthentications keyboard-interactive,password",
      "  StrictHostKeyChecking no",
      "  UserKnownHostsFile /dev/null",
      "  LogLevel ERROR",
      "",
    ].join("\n"),
  );
  const askpass = dir.file("askpass.sh");
  writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$VIGIL_BENCH_TOKEN"\n', { mode: 0o700 });
  return {
    options: ["-F", config, "-J", `gw@127.0.0.1:${sshPort}`],
    destination: `${sshd.user}@web-1`,
    env: {
      ...process.env,
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
      DISPLAY: "none",
      VIGIL_BENCH_TOKEN: token,
    },
  };
}

type Layout = "apart" | "up" | "apart-gcm";
type Side = "direct" | "direct-gcm" | Layout;
const LAYOUTS: { key: Layout; label: string; direct: "direct" | "direct-gcm" }[] = [
  { key: "apart", label: "hub, relay apart", direct: "direct" },
  { key: "up", label: "vigil up (hub+relay one process)", direct: "direct" },
  {
    key: "apart-gcm",
    label: "hub, relay apart, vigil ssh-config's ciphers (AES-GCM first; direct likewise)",
    direct: "direct-gcm",
  },
];
const SIDES: Side[] = ["direct", "apart", "up", "direct-gcm", "apart-gcm"];

export async function run(): Promise<BenchResult> {
  const loadAtStart = loadavg()[0] ?? 0;
  const dir = new Workdir();
  const sshd = await startSshd();
  let hub: HubHandle | undefined;
  let relay: VigilProcess | undefined;
  let up: VigilProcess | undefined;
  try {
    hub = await startHubProcess(dir, { policy: POLICY, env: { VIGIL_LOG_LEVEL: "warn" } });
    relay = startRelayProcess(dir, { id: "bench-ssh", hub: hub.grpc, connections: [webConnection(sshd)] });
    await waitForRelay(hub, "bench-ssh");
    const token = await createToken(hub, hub.adminToken, "bench-agent", ["agents"]);
    const vigilUp = await startVigilUp(dir, sshd);
    up = vigilUp.proc;
    const direct = directPath(dir, sshd);
    const paths: Record<Side, Path> = {
      direct,
      "direct-gcm": directPath(dir, sshd, SSH_CONFIG_CIPHERS, "direct-gcm"),
      apart: vigilPath(dir, sshd, hub.sshPort, token),
      up: vigilPath(dir, sshd, vigilUp.sshPort, vigilUp.token),
      "apart-gcm": vigilPath(dir, sshd, hub.sshPort, token, SSH_CONFIG_CIPHERS, "vigil-gcm"),
    };
    // Before timing: each path judges commands (rm -rf / is refused with 126).
    for (const layout of LAYOUTS) {
      const vigil = paths[layout.key];
      const refused = await runCommand("ssh", [...vigil.options, vigil.destination, "rm", "-rf", "/"], {
        env: vigil.env,
      });
      if (refused.code !== 126) {
        throw new Error(`rm -rf / through ${layout.label} exited ${refused.code}: ${refused.stderr}`);
      }
    }

    const source = dir.file("source.bin");
    await check("make the file", runCommand("sh", ["-c", `head -c ${FILE_BYTES} /dev/urandom > ${source}`]));
    console.error("ssh bench: scp direct and through both layouts, in turns");
    type Times = { up: number; down: number };
    const rounds: Record<Side, Times>[] = [];
    const roundLoads: number[] = [];
    const procs = { hub: hub.proc.pid, relay: relay.pid, up: up.pid };
    const cpu = { hub: 0, relay: 0, up: 0, hubGcm: 0, relayGcm: 0 };
    // The event loop runs on the main thread (thread id = pid); the rest is mostly V8's GC helpers.
    const loop = { hub: 0, relay: 0, up: 0 };
    const loopSeconds = (pid: number) => cpuSeconds(pid, pid);
    for (let i = 0; i < ROUNDS; i++) {
      // Who goes first rotates, so a burst of load elsewhere does not always hit the same side.
      const order = SIDES.map((_, k, all) => all[(k + i) % all.length]!);
      const round: Partial<Record<Side, Times>> = {};
      for (const side of order) {
        const before = { hub: cpuSeconds(procs.hub), relay: cpuSeconds(procs.relay), up: cpuSeconds(procs.up) };
        const beforeLoop = { hub: loopSeconds(procs.hub), relay: loopSeconds(procs.relay), up: loopSeconds(procs.up) };
        round[side] = await scpTimes(dir, paths[side], source, `r${i}${side}`);
        if (side === "apart") {
          cpu.hub += cpuSeconds(procs.hub) - before.hub;
          cpu.relay += cpuSeconds(procs.relay) - before.relay;
          loop.hub += loopSeconds(procs.hub) - beforeLoop.hub;
          loop.relay += loopSeconds(procs.relay) - beforeLoop.relay;
        } else if (side === "apart-gcm") {
          cpu.hubGcm += cpuSeconds(procs.hub) - before.hub;
          cpu.relayGcm += cpuSeconds(procs.relay) - before.relay;
        } else if (side === "up") {
          cpu.up += cpuSeconds(procs.up) - before.up;
          loop.up += loopSeconds(procs.up) - beforeLoop.up;
        }
      }
      rounds.push(round as Record<Side, Times>);
      roundLoads.push(loadavg()[0] ?? 0);
    }
    // Per transfer (one up or one down), what the processes spent.
    const perTransfer = (c: number) => c / (2 * ROUNDS);
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const medians = (side: Side): Times => ({
      up: median(rounds.map((r) => r[side].up)),
      down: median(rounds.map((r) => r[side].down)),
    });
    console.error("ssh bench: keystroke echo direct, then through Vigil (hub, relay apart)");
    const latDirect = await echoLatencies(direct);
    const latVigil = await echoLatencies(paths.apart);

    const mib = FILE_BYTES / 1024 / 1024;
    const mb = FILE_BYTES / 1e6;
    const rate = (s: number) => mb / s;
    const added = pct(latVigil, 50) - pct(latDirect, 50);
    const scpRows = (layout: (typeof LAYOUTS)[number]): BenchRow[] => {
      const v = medians(layout.key);
      const scpDirect = medians(layout.direct);
      const row = (what: "upload" | "download", d: number, x: number): BenchRow => ({
        metric: `${layout.label}: scp ${what} ${mib} MiB`,
        direct: rate(d),
        vigil: rate(x),
        unit: "MB/s",
        ratio: d / x,
        better: "higher",
        target: `≥ 0.6× direct: ${d / x >= 0.6 ? "met" : "missed"}`,
      });
      return [row("upload", scpDirect.up, v.up), row("download", scpDirect.down, v.down)];
    };
    const rows: BenchRow[] = [
      ...LAYOUTS.flatMap(scpRows),
      {
        metric: "keystroke echo p50, interactive bash",
        direct: pct(latDirect, 50),
        vigil: pct(latVigil, 50),
        unit: "ms",
        ratio: pct(latVigil, 50) / pct(latDirect, 50),
        better: "lower",
        target: `added ≤ 1 ms: +${added.toFixed(3)} ms, ${added <= 1 ? "met" : "missed"}`,
      },
      {
        metric: "keystroke echo p99, interactive bash",
        direct: pct(latDirect, 99),
        vigil: pct(latVigil, 99),
        unit: "ms",
        ratio: pct(latVigil, 99) / pct(latDirect, 99),
        better: "lower",
      },
    ];
    const perRound = (side: Side) =>
      rounds.map((r) => `${rate(r[side].up).toFixed(0)}/${rate(r[side].down).toFixed(0)}`).join(", ");
    return {
      name: "ssh",
      title: "SSH: ssh -J → hub jump host → relay ssh engine → sshd",
      when: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
      command: "npm run bench -- ssh",
      rows,
      notes: [
        "Direct = OpenSSH 9.2 (ssh, scp) to a local sshd with a key. Through Vigil = the same tools with `-J` to the hub's jump host (token by SSH_ASKPASS); the relay's ssh engine terminates the client's SSH (its own host key), judges every command and records the session (apart: NDJSON files in the relay's data dir; vigil up: its embedded chDB store), and logs in to the same sshd with its own key. Two layouts: a `vigil hub` and a `vigil relay` process (a gRPC tunnel between them), and `vigil up` (both in one process, the tunnel in memory). Three SSH encryptions on the way instead of one (client↔hub, client↔relay inside it, relay↔sshd), all on the same 2 vCPUs as the tools and sshd.",
        `scp: a ${mib} MiB random file, up (scp's default SFTP protocol, so every packet passes the relay's sftp inspector) and back down, wall time including connection set-up; the file is checked (SHA-256) after each round trip. ${ROUNDS} rounds of direct and both layouts back to back (who goes first rotates); medians shown. Every round, MB/s up/down: direct ${perRound("direct")}; apart ${perRound("apart")}; vigil up ${perRound("up")}; direct with AES-GCM first ${perRound("direct-gcm")}; apart with AES-GCM first ${perRound("apart-gcm")}; load average after each round ${roundLoads.map((l) => l.toFixed(1)).join(", ")}. Every byte passes through several short-lived Node Buffers (socket read, gRPC message, tunnel frame, SSH packet); V8 frees them in scavenges but counts the external bytes allocated since its last mark-compact against the old generation's room, and with its default heap growing factor the hub or the relay under load started a full mark-compact after nearly every scavenge (10-40 per 128 MiB at a 22-32 MB heap; the hub 2.59 s + relay 2.42 s of CPU per transfer in the run before, event loops 1.2 s each). \`vigil hub\`, \`relay\` and \`up\` now fix the factor at 4 (\`--heap-growing-percent=300\`, lib/gc-tuning.ts), and the relay's sftp inspector no longer copies what it passes: bench/ssh-profile.ts counted no mark-compacts during transfers since. scp also keeps at most 64 requests of 32 KiB in flight, each waiting for its answer through every process on the way.`,
        `Ciphers as negotiated by default: the OpenSSH client picks chacha20-poly1305 for its two legs (and direct); the relay picks aes128-gcm to the sshd (AES instructions here). The gRPC hop between hub and relay is plaintext HTTP/2 on loopback in this bench (no \`tls\` configured). CPU per ${mib} MiB transfer (average over all rounds), in parentheses the event-loop thread's share (the rest is V8's garbage-collector threads and Node's I/O): hub ${perTransfer(cpu.hub).toFixed(2)} s (${perTransfer(loop.hub).toFixed(2)}) + relay ${perTransfer(cpu.relay).toFixed(2)} s (${perTransfer(loop.relay).toFixed(2)}) apart, ${perTransfer(cpu.up).toFixed(2)} s (${perTransfer(loop.up).toFixed(2)}) for vigil up (ssh2's packet handling in JS, ciphers in its native binding; the relay also inspects sftp and records). On a shared 2-vCPU box the ratio follows total CPU more than any one process: direct is one encryption and one decryption, through Vigil three of each, three of the six in Node.`,
        `With \`vigil ssh-config\`'s Host blocks (\`Ciphers ^aes128-gcm@openssh.com,aes256-gcm@openssh.com\`: AES-GCM at the head of OpenSSH's list, the rest still offered; Vigil's servers offer ChaCha20 too, so clients without AES-GCM still get in) the client takes aes128-gcm for both legs through Vigil; its direct comparison takes it too. Against the default direct scp, the apart layout with these ciphers is ${(rate(medians("apart-gcm").up) / rate(medians("direct").up)).toFixed(2)}× up and ${(rate(medians("apart-gcm").down) / rate(medians("direct").down)).toFixed(2)}× down. CPU per transfer with them: hub ${perTransfer(cpu.hubGcm).toFixed(2)} s + relay ${perTransfer(cpu.relayGcm).toFixed(2)} s.`,
        `Echo (hub, relay apart): python3 on a real pty types ${KEYS} keys one at a time (after ${WARMUP_KEYS} warm-up keys) into bash and times until each key's echo is read back; through Vigil every key also passes the relay's line tracker and the terminal output its recorder.`,
        `Load average ${loadAtStart.toFixed(1)} at the start, ${(loadavg()[0] ?? 0).toFixed(1)} at the end: this 2-vCPU VM is shared with other jobs and swings ±50% between runs; compare ratios within one run.`,
      ],
    };
  } finally {
    await up?.stop();
    await relay?.stop();
    await hub?.proc.stop();
    await sshd.stop();
    dir.cleanup();
  }
}
