import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(REPO, "bin/vigil.js");

/** A real `vigil` process (hub, relay, connect, …) with its output captured for assertions. */
export class VigilProcess {
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (this.stdout += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Wait until stdout or stderr matches, failing with the output so far when it does not in time. */
  /**
   * Wait for a line matching `pattern`. The default is generous: on a loaded 2-vCPU machine a
   * fresh process spends seconds compiling TypeScript before it prints anything.
   */
  async waitFor(pattern: RegExp, timeoutMs = 45_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.stdout.match(pattern) ?? this.stderr.match(pattern);
      if (m) return m;
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `${this.name}: ${pattern} not seen (exit ${this.child.exitCode})\n--- stdout\n${this.stdout.slice(-3000)}\n--- stderr\n${this.stderr.slice(-3000)}`,
        );
      }
      await sleep(25);
    }
  }

  /** Peak resident memory (VmHWM) in MiB, from /proc while the process lives. */
  peakRssMiB(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
  }

  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export function spawnVigil(name: string, args: string[], env: Record<string, string | undefined> = {}): VigilProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO,
    env: { ...process.env, VIGIL_TOKEN: undefined, VIGIL_HUB: undefined, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new VigilProcess(child, name);
}

/** A temp dir for one test's configs, keys and data, removed by `cleanup`. */
export class Workdir {
  readonly path = mkdtempSync(join(tmpdir(), "vigil-test-"));

  file(name: string): string {
    return join(this.path, name);
  }

  writeConfig(name: string, config: object): string {
    const file = this.file(name);
    writeFileSync(file, stringify(config));
    return file;
  }

  cleanup(): void {
    // Retried: a process that just exited may leave its own children finishing writes (chDB merges).
    rmSync(this.path, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` until it returns a value (not undefined) or time runs out. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
    await sleep(50);
  }
}

/** GET/POST the hub API with a token, returning status and parsed JSON. */
export async function api(base: string, path: string, token?: string, init: { method?: string; body?: unknown } = {}) {
  const res = await fetch(new URL(path, base), {
    method: init.method ?? "GET",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(init.body !== undefined ? { "content-type": "application/json" } : {}),
    },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
