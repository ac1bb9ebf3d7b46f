import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * The embedded ClickHouse (chDB) runs its merges, insert pipelines and other background work on
 * threads of its own inside this process. Under `vigil up` they compete with the data path (the
 * front doors and relay engines on Node's main thread) for the same CPUs: on a small machine a
 * burst of statements through the postgres engine is slowed down by the merges of the events it
 * just recorded. While the recording store keeps up, those threads run at a lower priority
 * (`nice`), so they use the CPU the data path leaves idle; once its queue falls behind, they are put
 * back at normal priority and compete as equals again, so the store cannot fall behind without bound.
 *
 * Linux only (threads are found by name under /proc/self/task, and nice is per thread there);
 * elsewhere this does nothing. Lowering a thread's priority needs no privilege, but raising it back
 * does (root, or RLIMIT_NICE): a process that could not undo it leaves the engine's threads alone.
 */

/** The nice value of the engine's threads while the data path goes first. */
export const ENGINE_NICE_YIELDING = 10;
/** How often new engine threads (its pools grow on demand) are looked for. */
const SCAN_MS = 1000;
/** Threads that are Node's own (main thread, libuv pool, V8 workers) or that ClickHouse pinned itself. */
const NOT_ENGINE = /^(node|v8:|libuv|MemoryWorker)/;

let timer: NodeJS.Timeout | undefined;
let wanted = ENGINE_NICE_YIELDING;
/** Thread id → the nice value last set on it. */
const applied = new Map<number, number>();

/** Start lowering the engine's threads (idempotent). */
export function watchEngineThreads(): void {
  if (timer || process.platform !== "linux" || !mayRaiseBack()) return;
  scan();
  timer = setInterval(scan, SCAN_MS);
  timer.unref();
}

/** Whether the store keeps up: the engine yields to the data path only while it does. */
export function engineKeepsUp(keepsUp: boolean): void {
  const nice = keepsUp ? ENGINE_NICE_YIELDING : 0;
  if (nice === wanted) return;
  wanted = nice;
  if (timer) scan();
}

/** The nice value of each engine thread now (for tests and diagnostics). */
export function engineThreadNice(): Map<string, number> {
  const out = new Map<string, number>();
  for (const { tid, name, nice } of engineThreads()) out.set(`${name}:${tid}`, nice);
  return out;
}

/** Whether this process may set nice 0 again after raising it: root, or a soft RLIMIT_NICE of 20. */
function mayRaiseBack(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const line = /^Max nice priority\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return Number(line?.[1]) >= 20;
  } catch {
    return false;
  }
}

function scan(): void {
  const seen = new Set<number>();
  for (const { tid } of engineThreads()) {
    seen.add(tid);
    if (applied.get(tid) === wanted) continue;
    try {
      setPriority(tid, wanted);
      applied.set(tid, wanted);
    } catch {
      // The thread ended between the listing and now, or raising it back is not permitted here
      // (RLIMIT_NICE): it keeps the value it has.
      applied.set(tid, wanted);
    }
  }
  for (const tid of applied.keys()) if (!seen.has(tid)) applied.delete(tid);
}

function* engineThreads(): Generator<{ tid: number; name: string; nice: number }> {
  let tasks: string[];
  try {
    tasks = readdirSync("/proc/self/task");
  } catch {
    return;
  }
  for (const task of tasks) {
    try {
      const stat = readFileSync(`/proc/self/task/${task}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      if (NOT_ENGINE.test(name)) continue;
      // Fields after the name: state is the first; nice is the 19th field of the whole line.
      const nice = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
      yield { tid: Number(task), name, nice };
    } catch {
      // the thread is gone
    }
  }
}
