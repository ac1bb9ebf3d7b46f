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
import { run as runCommand, startSshd, type SshdHandle } from "../test/support/services.js";
import { Workdir, type VigilProcess } from "../test/support/vigil.js";

const FILE_BYTES = Number(process.env.VIGIL_BENCH_MIB ?? 256) * 1024 * 1024;
const KEYS = Number(process.env.VIGIL_BENCH_KEYS ?? 400);
/** scp rounds; each measures direct and Vigil back to back, and the medians are reported. */
const ROUNDS = Number(process.env.VIGIL_BENCH_ROUNDS ?? 3);
const WARMUP_KEYS = 40;
const ECHO_SCRIPT = fileURLToPath(new URL("ssh-echo.py", import.meta.url));

const POLICY = `policies:
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

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

function directPath(dir: Workdir, sshd: SshdHandle): Path {
  const config = dir.file("direct.ssh_config");
  writeFileSync(
    config,
    [
      "Host *",
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

function vigilPath(dir: Workdir, sshd: SshdHandle, sshPort: number, token: string): Path {
  const config = dir.file("vigil.ssh_config");
  writeFileSync(
    config,
    [
      "Host *",
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

export async function run(): Promise<BenchResult> {
  const loadAtStart = loadavg()[0] ?? 0;
  const dir = new Workdir();
  const sshd = await startSshd();
  let hub: HubHandle | undefined;
  let relay: VigilProcess | undefined;
  try {
    hub = await startHubProcess(dir, { policy: POLICY, env: { VIGIL_LOG_LEVEL: "warn" } });
    relay = startRelayProcess(dir, {
      id: "bench-ssh",
      hub: hub.grpc,
      connections: [
        {
          name: "web-1",
          type: "ssh",
          target: `127.0.0.1:${sshd.port}`,
          credentials: { user: sshd.user, privateKeyFile: sshd.clientKeyPath, hostKey: sshd.hostPublicKey },
        },
      ],
    });
    await waitForRelay(hub, "bench-ssh");
    const token = await createToken(hub, hub.adminToken, "bench-agent", ["agents"]);
    const direct = directPath(dir, sshd);
    const vigil = vigilPath(dir, sshd, hub.sshPort, token);
    // Before timing: the path judges commands (rm -rf / is refused with 126).
    const refused = await runCommand("ssh", [...vigil.options, vigil.destination, "rm", "-rf", "/"], {
      env: vigil.env,
    });
    if (refused.code !== 126) throw new Error(`rm -rf / through Vigil exited ${refused.code}: ${refused.stderr}`);

    const source = dir.file("source.bin");
    await check("make the file", runCommand("sh", ["-c", `head -c ${FILE_BYTES} /dev/urandom > ${source}`]));
    console.error("ssh bench: scp direct, then through Vigil");
    const rounds: { direct: { up: number; down: number }; vigil: { up: number; down: number } }[] = [];
    const cpuBefore = [cpuSeconds(hub.proc.pid), cpuSeconds(relay.pid)];
    for (let i = 0; i < ROUNDS; i++) {
      // Who goes first alternates, so a burst of load elsewhere does not always hit the same side.
      const first = i % 2 === 0 ? direct : vigil;
      const a = await scpTimes(dir, first, source, `r${i}a`);
      const b = await scpTimes(dir, first === direct ? vigil : direct, source, `r${i}b`);
      rounds.push(first === direct ? { direct: a, vigil: b } : { direct: b, vigil: a });
    }
    // Per transfer (one up or one down), what the hub and the relay spent.
    const [hubCpu, relayCpu] = [cpuSeconds(hub.proc.pid), cpuSeconds(relay.pid)].map(
      (c, i) => (c - cpuBefore[i]!) / (2 * ROUNDS),
    );
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const scpDirect = { up: median(rounds.map((r) => r.direct.up)), down: median(rounds.map((r) => r.direct.down)) };
    const scpVigil = { up: median(rounds.map((r) => r.vigil.up)), down: median(rounds.map((r) => r.vigil.down)) };
    console.error("ssh bench: keystroke echo direct, then through Vigil");
    const latDirect = await echoLatencies(direct);
    const latVigil = await echoLatencies(vigil);

    const mb = FILE_BYTES / 1e6;
    const rate = (s: number) => mb / s;
    const added = pct(latVigil, 50) - pct(latDirect, 50);
    const rows: BenchRow[] = [
      {
        metric: `scp upload ${FILE_BYTES / 1024 / 1024} MiB`,
        direct: rate(scpDirect.up),
        vigil: rate(scpVigil.up),
        unit: "MB/s",
        ratio: scpDirect.up / scpVigil.up,
        better: "higher",
        target: `≥ 0.6× direct: ${scpDirect.up / scpVigil.up >= 0.6 ? "met" : "missed"}`,
      },
      {
        metric: `scp download ${FILE_BYTES / 1024 / 1024} MiB`,
        direct: rate(scpDirect.down),
        vigil: rate(scpVigil.down),
        unit: "MB/s",
        ratio: scpDirect.down / scpVigil.down,
        better: "higher",
        target: `≥ 0.6× direct: ${scpDirect.down / scpVigil.down >= 0.6 ? "met" : "missed"}`,
      },
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
    return {
      name: "ssh",
      title: "SSH: ssh -J → hub jump host → relay ssh engine → sshd",
      when: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`,
      command: "npm run bench -- ssh",
      rows,
      notes: [
        "Direct = OpenSSH 9.2 (ssh, scp) to a local sshd with a key. Through Vigil = the same tools with `-J` to the hub's jump host (token by SSH_ASKPASS), a `vigil hub` and a `vigil relay` process, whose ssh engine terminates the client's SSH (its own host key), judges every command and records the session (NDJSON in its data dir), and logs in to the same sshd with its own key. Three SSH encryptions on the way instead of one (client↔hub, client↔relay inside it, relay↔sshd), all on the same 2 vCPUs as the tools and sshd.",
        `scp: a ${FILE_BYTES / 1024 / 1024} MiB random file, up (scp's default SFTP protocol, so every packet passes the relay's sftp inspector) and back down, wall time including connection set-up; the file is checked (SHA-256) after each round trip. ${ROUNDS} rounds, direct and Vigil back to back (alternating who goes first); medians shown. Every round, MB/s up/down direct | Vigil: ${rounds.map((r) => `${rate(r.direct.up).toFixed(0)}/${rate(r.direct.down).toFixed(0)} | ${rate(r.vigil.up).toFixed(0)}/${rate(r.vigil.down).toFixed(0)}`).join("; ")}.`,
        `CPU per ${FILE_BYTES / 1024 / 1024} MiB transfer (average over all rounds): hub ${hubCpu!.toFixed(2)} s, relay ${relayCpu!.toFixed(2)} s (ssh2's ciphers and packet handling in JS; the relay also inspects sftp and records). On a shared 2-vCPU box the ratio follows total CPU more than any one process: direct is one encryption and one decryption in C, through Vigil three of each, three of the six in Node.`,
        `Echo: python3 on a real pty types ${KEYS} keys one at a time (after ${WARMUP_KEYS} warm-up keys) into bash and times until each key's echo is read back; through Vigil every key also passes the relay's line tracker and the terminal output its recorder.`,
        `Load average ${loadAtStart.toFixed(1)} at the start, ${(loadavg()[0] ?? 0).toFixed(1)} at the end: this 2-vCPU VM is shared with other jobs and swings ±50% between runs; compare ratios within one run.`,
      ],
    };
  } finally {
    await relay?.stop();
    await hub?.proc.stop();
    await sshd.stop();
    dir.cleanup();
  }
}
