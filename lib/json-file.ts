import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Read a JSON state file; undefined when it does not exist yet. Any other problem (unreadable,
 * not JSON) throws, naming `what`: state that cannot be read is never silently replaced.
 */
export function readJsonFile<T>(file: string, what: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Replace a state file atomically (write a temp file, rename it over) with owner-only access. The
 * temp name is per process, and its mode is set explicitly because `mode` only applies to a file the
 * write creates: a leftover temp file must not keep looser permissions.
 */
export function writeJsonFile(file: string, value: unknown): void {
  writeTextFileAtomic(file, JSON.stringify(value, null, 2) + "\n");
}

/** The same for any text (keys, certificates): atomic, owner-only. */
export function writeTextFileAtomic(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
