// Where scp through Vigil spends its CPU: hub and relay as two processes, scp up and down, CPU per
// MiB of every process on the path (hub, relay, sshd and its children, the ssh/scp client and its
// jump ssh), of the hub's and relay's event-loop threads, and the machine's busy share during the
// transfer. Not part of `npm run bench`; run it under the bench lock:
//   flock /tmp/vigil-bench.lock node --import tsx bench/ssh-profile.ts
// VIGIL_BENCH_MIB (256), VIGIL_BENCH_ROUNDS (2); PROFILE_TLS=1 puts TLS between hub and relay;
// PROFILE_AB=tls adds a second hub+relay pair ("B") with TLS between them, PROFILE_AB="NAME=value"
// one started with that environment; the pairs are measured in turns, to compare under the same load.
// Node refuses --trace-gc in NODE_OPTIONS; with PROFILE_NODE_OPTIONS="--import FILE" where FILE runs
// `v8.setFlagsFromString("--trace-gc")`, each row also counts the hub's and relay's collections
// during the transfer: mark-compacts (M) and scavenges (s), with their main-thread pauses in ms.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../test/support/mesh.js";
import { run, startSshd, type SshdHandle } from "../test/support/services.js";
import { Workdir, type VigilProcess } from "../test/support/vigil.js";
import { POLICY } from "./ssh.js";

const MIB = Number(process.env.VIGIL_BENCH_MIB ?? 256);
const ROUNDS = Number(process.env.VIGIL_BENCH_ROUNDS ?? 2);
const TLS = process.env.PROFILE_TLS === "1";
const AB = process.env.PROFILE_AB;

/** [self, waited-for children] user+sys CPU seconds of a process (or, with tid, of one thread). */
function cpu(pid: number, tid?: number): [number, number] {
  const path = tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`;
  const f = readFileSync(path, "utf8").split(") ")[1]!.split(" ");
  return [(Number(f[11]) + Number(f[12])) / 100, (Number(f[13]) + Number(f[14])) / 100];
}
function machine(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!;
  return { busy: f.slice(0, 8).reduce((a, b) => a + b, 0) - idle, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}
/** --trace-gc lines in `out`: "3 M 41 ms, 120 s 95 ms" (mark-compacts, scavenges, main-thread pauses). */
function gcCount(out: string): string {
  let marks = 0;
  let scavenges = 0;
  let markMs = 0;
  let scavengeMs = 0;
  for (const m of out.matchAll(/: (Mark-Compact|Scavenge)[^,]*MB, ([\d.]+) \/ /g)) {
    if (m[1] === "Scavenge") {
      scavenges++;
      scavengeMs += Number(m[2]);
    } else {
      marks++;
      markMs += Number(m[2]);
    }
  }
  if (marks + scavenges === 0) return "-";
  return `${marks} M ${markMs.toFixed(0)} ms, ${scavenges} s ${scavengeMs.toFixed(0)} ms`;
}
const load = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0];

interface Pair {
  hub: HubHandle;
  relay: VigilProcess;
  token: string;
}

async function main(): Promise<void> {
  const dir = new Workdir();
  const sshd: SshdHandle = await startSshd();
  const sshdPid = Number(readFileSync(join(dirname(sshd.hostKeyPath), "sshd.pid"), "utf8"));
  const pairs: Record<string, Pair> = {};
  /** Every process started, stopped at the end even when a pair never came up. */
  const started: VigilProcess[] = [];
  try {
    let hubTls: object = {};
    let relayTls: object = {};
    const tlsB = AB === "tls";
    if (TLS || tlsB) {
      execFileSync(
        "openssl",
        [
          ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
          ...["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
          ...["-keyout", dir.file("hub.key"), "-out", dir.file("hub.pem")],
        ],
        { stdio: "ignore" },
      );
      hubTls = { tls: { cert: dir.file("hub.pem"), key: dir.file("hub.key") } };
      relayTls = { tls: { ca: dir.file("hub.pem") } };
    }
    const startPair = async (name: string, env: Record<string, string>, tls = TLS): Promise<Pair> => {
      const hub = await startHubProcess(dir, {
        name: `hub-${name}`,
        policy: POLICY,
        env: { VIGIL_LOG_LEVEL: "warn", ...env },
        extra: tls ? hubTls : {},
      });
      const saved = { ...process.env };
      Object.assign(process.env, env);
      started.push(hub.proc);
      const relay = startRelayProcess(dir, {
        id: `prof-${name}`,
        hub: hub.grpc,
        extra: tls ? relayTls : {},
        connections: [
          {
            name: "web-1",
            type: "ssh",
            target: `127.0.0.1:${sshd.port}`,
            credentials: { user: sshd.user, privateKeyFile: sshd.clientKeyPath, hostKey: sshd.hostPublicKey },
          },
        ],
      });
      started.push(relay);
      process.env = saved;
      // With tls the hub's API is HTTPS with the same self-signed certificate.
      if (tls) process.env.NODE_EXTRA_CA_CERTS = dir.file("hub.pem");
      const ca: Record<string, string> = tls
        ? { VIGIL_CA: dir.file("hub.pem"), NODE_EXTRA_CA_CERTS: dir.file("hub.pem") }
        : {};
      if (tls) process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // this process's API polls, loopback only
      await waitForRelay(hub, `prof-${name}`);
      return { hub, relay, token: await createToken(hub, hub.adminToken, "bench-agent", ["agents"], ca) };
    };
    // PROFILE_NODE_OPTIONS: node options for both pairs (--perf-basic-prof for perf, an --import hook).
    const nodeOptions: Record<string, string> = process.env.PROFILE_NODE_OPTIONS
      ? { NODE_OPTIONS: process.env.PROFILE_NODE_OPTIONS }
      : {};
    pairs.A = await startPair("a", { ...nodeOptions });
    if (tlsB) pairs.B = await startPair("b", { ...nodeOptions }, true);
    else if (AB) {
      const at = AB.indexOf("=");
      const [k, v] = at < 0 ? [AB, "1"] : [AB.slice(0, at), AB.slice(at + 1)];
      pairs.B = await startPair("b", { ...nodeOptions, [k]: v });
    }
    const askpass = dir.file("askpass.sh");
    writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$VIGIL_BENCH_TOKEN"\n', { mode: 0o700 });
    // One config file for both hops: the jump ssh reads -F, not -o.
    const config = (name: string, lines: string[]) => {
      const file = dir.file(`ssh_config-${name}`);
      const common = ["Host *", "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR"];
      writeFileSync(file, [...common, ...lines, ""].join("\n"));
      return ["-F", file];
    };
    interface Side {
      args: string[];
      dest: string;
      env: NodeJS.ProcessEnv;
      pair?: Pair;
    }
    const sides: Record<string, Side> = {
      direct: {
        args: config("direct", [
          `  IdentityFile ${sshd.clientKeyPath}`,
          `  Port ${sshd.port}`,
          "  IdentitiesOnly yes",
          "  BatchMode yes",
        ]),
        dest: `${sshd.user}@127.0.0.1`,
        env: process.env,
      },
    };
    for (const [name, pair] of Object.entries(pairs)) {
      sides[name] = {
        args: [
          ...config("vigil", ["  PubkeyAuthentication no", "  PreferredAuthentications keyboard-interactive,password"]),
          "-J",
          `gw@127.0.0.1:${pair.hub.sshPort}`,
        ],
        dest: `${sshd.user}@web-1`,
        env: {
          ...process.env,
          SSH_ASKPASS: askpass,
          SSH_ASKPASS_REQUIRE: "force",
          DISPLAY: "none",
          VIGIL_BENCH_TOKEN: pair.token,
        },
        pair,
      };
    }
    const source = dir.file("source.bin");
    execFileSync("sh", ["-c", `head -c ${MIB * 1024 * 1024} /dev/urandom > ${source}`]);
    console.log(`TLS between hub and relay: ${TLS}; B = ${AB ?? "none"}; ${MIB} MiB; load ${load()}`);
    console.log("side   dir   MB/s | CPU ms/MiB: hub (main)  relay (main)  sshd  client | total | busy: machine, path");
    const per = (s: number) => ((s * 1000) / MIB).toFixed(1).padStart(5);
    const names = Object.keys(sides);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + r) % names.length]!;
        const side = sides[name]!;
        const remote = dir.file(`remote-${name}.bin`);
        for (const [what, from, to] of [
          ["up", source, `${side.dest}:${remote}`],
          ["down", `${side.dest}:${remote}`, dir.file(`back-${name}.bin`)],
        ] as const) {
          const p = side.pair;
          const vigilCpu = () =>
            p
              ? {
                  hub: cpu(p.hub.proc.pid)[0],
                  hubMain: cpu(p.hub.proc.pid, p.hub.proc.pid)[0],
                  relay: cpu(p.relay.pid)[0],
                  relayMain: cpu(p.relay.pid, p.relay.pid)[0],
                }
              : { hub: 0, hubMain: 0, relay: 0, relayMain: 0 };
          const before = { ...vigilCpu(), sshd: cpu(sshdPid)[1], m: machine() };
          const gcFrom = p ? { hub: p.hub.proc.stdout.length, relay: p.relay.stdout.length } : undefined;
          const t0 = performance.now();
          const res = await run("bash", ["-c", 'scp "$@"; s=$?; times >&2; exit $s', "bash", ...side.args, from, to], {
            env: side.env,
            timeoutMs: 300_000,
          });
          const secs = (performance.now() - t0) / 1000;
          if (res.code !== 0) throw new Error(`scp ${name} ${what}: ${res.stderr}`);
          const m = machine();
          // sshd's session processes count once the listener has reaped them.
          await new Promise((resolve) => setTimeout(resolve, 400));
          const times = res.stderr
            .trim()
            .split("\n")
            .at(-1)!
            .split(/\s+/)
            .map((t) => {
              const x = /(\d+)m([\d.]+)s/.exec(t)!;
              return Number(x[1]) * 60 + Number(x[2]);
            });
          const after = vigilCpu();
          const c = {
            hub: after.hub - before.hub,
            hubMain: after.hubMain - before.hubMain,
            relay: after.relay - before.relay,
            relayMain: after.relayMain - before.relayMain,
            sshd: cpu(sshdPid)[1] - before.sshd,
            client: times[0]! + times[1]!,
          };
          const total = c.hub + c.relay + c.sshd + c.client;
          const busy = ((m.busy - before.m.busy) / (m.total - before.m.total)) * 100;
          const gc =
            p && gcFrom
              ? ` | gc hub ${gcCount(p.hub.proc.stdout.slice(gcFrom.hub))}, relay ${gcCount(p.relay.stdout.slice(gcFrom.relay))}`
              : "";
          console.log(
            `${name.padEnd(6)} ${what.padEnd(5)} ${((MIB * 1.048576) / secs).toFixed(0).padStart(4)} | ${per(c.hub)} (${per(c.hubMain)}) ${per(c.relay)} (${per(c.relayMain)}) ${per(c.sshd)} ${per(c.client)} | ${per(total)} | ${busy.toFixed(0)}%, ${((total / secs) * 50).toFixed(0)}%${gc}`,
          );
        }
      }
    }
    console.log(`load ${load()}`);
    // PROFILE_OUT=prefix keeps each process's stdout (the --trace-gc lines) in prefix-PAIR-hub.out and -relay.out.
    const out = process.env.PROFILE_OUT;
    for (const [name, pair] of Object.entries(pairs)) {
      if (!out) break;
      writeFileSync(`${out}-${name}-hub.out`, pair.hub.proc.stdout);
      writeFileSync(`${out}-${name}-relay.out`, pair.relay.stdout);
    }
    for (const [name, pair] of Object.entries(pairs)) {
      for (const [what, pid] of [
        ["hub", pair.hub.proc.pid],
        ["relay", pair.relay.pid],
      ] as const) {
        const threads = readdirSync(`/proc/${pid}/task`).map((tid) => {
          const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
          return `${comm} ${cpu(pid, Number(tid))[0].toFixed(2)}`;
        });
        const peak = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;
        console.log(
          `${name} ${what} peak RSS ${peak.toFixed(0)} MiB; threads (CPU s since start): ${threads.join(", ")}`,
        );
      }
    }
  } finally {
    for (const proc of started.reverse()) await proc.stop();
    await sshd.stop();
    dir.cleanup();
  }
}

await main();
process.exit(0);
