import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RecordingEvent } from "../../lib/recording/chain.js";
import { testServices } from "../support/env.js";
import type { HubHandle } from "../support/mesh.js";
import { run, type RunResult } from "../support/services.js";
import type { Workdir } from "../support/vigil.js";

/** The relay's connection to the shared test sshd: the relay's own key, the target's host key pinned. */
export function sshConnection(name: string, labels: Record<string, string> = {}) {
  const { sshd } = testServices();
  return {
    name,
    type: "ssh",
    target: `127.0.0.1:${sshd.port}`,
    labels,
    credentials: { user: sshd.user, privateKeyFile: sshd.clientKeyPath, hostKey: sshd.hostPublicKey },
  };
}

/**
 * An OpenSSH config for the tests (`ssh -F`): it applies to the jump connection too, which
 * command-line `-o` options do not reach. Host keys are not checked unless a known_hosts is given.
 */
export function sshConfig(dir: Workdir, name: string, lines: string[] = []): string {
  const file = dir.file(`${name}.ssh_config`);
  writeFileSync(
    file,
    [
      "Host *",
      ...lines.map((l) => `  ${l}`),
      "  StrictHostKeyChecking no",
      "  UserKnownHostsFile /dev/null",
      "  LogLevel ERROR",
      "  ConnectTimeout 10",
      "  IdentitiesOnly yes",
      "  PubkeyAuthentication no",
      "  PreferredAuthentications password",
      "",
    ].join("\n"),
  );
  return file;
}

export interface SshVia {
  hub: HubHandle;
  config: string;
  /** The token typed as the jump host's password (through sshpass, from the environment). */
  token?: string;
  user?: string;
  /** Extra ssh options before the destination. */
  options?: string[];
  timeoutMs?: number;
  input?: string;
  /** More environment for the tool (e.g. SSH_AUTH_SOCK). */
  env?: Record<string, string>;
}

/** ssh's arguments `-F <config> -J gw@HUB <options…> <user>@<connection> <command…>`. */
export function viaArgs(
  via: Pick<SshVia, "config" | "hub" | "options" | "user">,
  connection: string,
  command: string[] = [],
): string[] {
  const user = via.user ?? testServices().sshd.user;
  return [
    "-F",
    via.config,
    "-J",
    `gw@127.0.0.1:${via.hub.sshPort}`,
    ...(via.options ?? []),
    `${user}@${connection}`,
    ...command,
  ];
}

/** `ssh -F <config> -J gw@HUB <user>@<connection> <command…>`, the token given by sshpass. */
export function sshVia(via: SshVia, connection: string, ...command: string[]): Promise<RunResult> {
  return withToken(via, "ssh", viaArgs(via, connection, command));
}

/** Any OpenSSH tool (scp, sftp, ssh) with the token typed by sshpass. */
export function withToken(
  via: Pick<SshVia, "token" | "timeoutMs" | "input" | "env">,
  tool: string,
  args: string[],
): Promise<RunResult> {
  const opts = {
    timeoutMs: via.timeoutMs ?? 30_000,
    ...(via.input !== undefined ? { input: via.input } : {}),
    env: { ...process.env, ...via.env },
  };
  if (via.token === undefined) return run(tool, args, opts);
  return run("sshpass", ["-e", tool, ...args], { ...opts, env: { ...opts.env, SSHPASS: via.token } });
}

/** Every recorded event of the relay (kept as NDJSON under its data dir), by session. */
export function recordedSessions(relayDataDir: string): Map<string, RecordingEvent[]> {
  const dir = join(relayDataDir, "recordings");
  const out = new Map<string, RecordingEvent[]>();
  for (const f of readdirSync(dir).filter((n) => n.endsWith(".ndjson"))) {
    const events = readFileSync(join(dir, f), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => RecordingEvent.fromJSON(JSON.parse(l)));
    out.set(f.replace(/\.ndjson$/, ""), events);
  }
  return out;
}

/** The session whose events include a command with this text. */
export function sessionWithCommand(relayDataDir: string, text: RegExp): RecordingEvent[] | undefined {
  for (const events of recordedSessions(relayDataDir).values()) {
    if (events.some((e) => e.body?.$case === "command" && text.test(e.body.value.text))) return events;
  }
  return undefined;
}

const PTY_DRIVER = new URL("./pty-driver.py", import.meta.url).pathname;

export type PtyStep =
  | { expect: string; timeout?: number }
  | { send: string }
  | { keys: string; gapMs?: number }
  | { resize: [rows: number, cols: number] }
  | { signal: string }
  | { close: true };

/**
 * `ssh -tt -J … [command…]` on a real pseudo-terminal (python3's pty module), typing and waiting as
 * a person would. The token comes from SSH_ASKPASS, so nothing else is written to the terminal.
 * The status is negative when ssh died of a signal.
 */
export async function sshOnPty(
  dir: Workdir,
  via: SshVia,
  connection: string,
  steps: PtyStep[],
  command: string[] = [],
): Promise<{ output: string; status: number | null; error: string | null }> {
  const askpass = dir.file("askpass.sh");
  writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$VIGIL_TEST_TOKEN"\n', { mode: 0o700 });
  const argv = ["ssh", "-tt", ...viaArgs(via, connection, command)];
  const r = await run("python3", [PTY_DRIVER, JSON.stringify(argv), JSON.stringify(steps)], {
    timeoutMs: via.timeoutMs ?? 60_000,
    env: {
      ...process.env,
      SSH_ASKPASS: askpass,
      SSH_ASKPASS_REQUIRE: "force",
      VIGIL_TEST_TOKEN: via.token ?? "",
      DISPLAY: "none",
    },
  });
  if (r.code !== 0) throw new Error(`pty driver failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { output: string; status: number | null; error: string | null };
}
