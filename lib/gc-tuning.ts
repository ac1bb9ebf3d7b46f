import { setFlagsFromString } from "node:v8";

/**
 * How far the old generation may grow past what the last mark-compact left before V8 starts the
 * next one, as `--heap-growing-percent`: 300 is a factor of 4, the ceiling of V8's own dynamic
 * factor, which it lowers (towards 1.1) when marking looks slow next to the program.
 */
export const HEAP_GROWING_PERCENT = 300;

/**
 * Tune V8's garbage collector for a process that relays bytes (`vigil hub`, `vigil relay`, `vigil up`).
 *
 * Every relayed byte passes through several short-lived Node Buffers. V8 frees them in scavenges,
 * but counts the external bytes allocated since the last mark-compact against the old generation's
 * room, and starts a full mark-compact when that room falls below the young generation's size.
 * Under load that happened after nearly every scavenge (a 22-32 MB heap, an allocation limit
 * 1.3× that): 10-40 mark-compacts per 128 MiB scp, each marking the whole heap on V8's helper
 * threads, and the hub and the relay spent about as much CPU in them as in their event loops, while
 * the heap itself did not grow. With the factor fixed at 4 the same transfers ran without a single
 * mark-compact (bench/ssh-profile.ts, docs/benchmarks.md); the buffers are still freed by scavenges.
 *
 * The flag is read each time V8 computes the next limit, so setting it at startup is enough (V8
 * refuses it in NODE_OPTIONS). A `--heap-growing-percent` given to node by hand wins.
 */
export function tuneGcForRelaying(): void {
  if (process.execArgv.some((arg) => arg.startsWith("--heap-growing-percent"))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
