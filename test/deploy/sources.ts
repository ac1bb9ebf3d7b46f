// What the Docker image must contain: the files `vigil` loads at run time (followed from bin/vigil.js)
// and the packages they import, and a .dockerignore matcher to check the build context against.
import { existsSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { dirname, join, relative, resolve } from "node:path";

export interface RuntimeImports {
  /** Repository-relative paths of every source file reachable from the entry point. */
  files: string[];
  /** Packages imported at run time (type-only imports excluded), by name: "@grpc/grpc-js", "yaml". */
  packages: Map<string, string[]>;
}

// `import x from "m"`, `import { type A, b } from "m"`, `export * from "m"`, `import "m"`, `import("m")`.
const STATIC = /\b(import|export)\s+(type\s+)?([\w*{}\s,$]*?)\s*from\s*["']([^"']+)["']/g;
const BARE = /\bimport\s+["']([^"']+)["']/g;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Follow relative imports from `entry` (repository-relative) through the sources. */
export function runtimeImports(repo: string, entry: string): RuntimeImports {
  const files = new Set<string>();
  const packages = new Map<string, string[]>();
  const queue = [resolve(repo, entry)];
  while (queue.length > 0) {
    const file = queue.pop()!;
    const rel = relative(repo, file);
    if (files.has(rel)) continue;
    files.add(rel);
    for (const specifier of specifiers(readFileSync(file, "utf8"))) {
      if (specifier.startsWith(".")) {
        queue.push(resolveRelative(file, specifier));
      } else if (!isBuiltin(specifier)) {
        const name = packageName(specifier);
        packages.set(name, [...(packages.get(name) ?? []), rel]);
      }
    }
  }
  return { files: [...files].sort(), packages };
}

function specifiers(source: string): string[] {
  // Drop comments that could hold import-like text: block comments and whole-line // comments.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  for (const m of code.matchAll(STATIC)) {
    const typeOnly = m[2] !== undefined || /^\{\s*(type\s+\w+(\s+as\s+\w+)?\s*,?\s*)+\}$/.test(m[3] ?? "");
    if (!typeOnly) out.push(m[4] ?? "");
  }
  for (const m of code.matchAll(BARE)) out.push(m[1] ?? "");
  for (const m of code.matchAll(DYNAMIC)) out.push(m[1] ?? "");
  return out.filter(Boolean);
}

/** "./x.js" next to a .ts source is the .ts file (NodeNext convention); explicit .ts paths are as written. */
function resolveRelative(from: string, specifier: string): string {
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, base.replace(/\.js$/, ".ts"), `${base}.ts`, join(base, "index.ts")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`${from}: cannot resolve import "${specifier}"`);
}

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier);
}

/**
 * .dockerignore semantics (moby/patternmatcher): patterns in order, the last one that matches a path or one
 * of its parent directories decides; `!` re-includes; `*` and `?` stay within one path segment, `**` spans
 * any number of them.
 */
export class DockerIgnore {
  private readonly rules: Array<{ negate: boolean; re: RegExp; pattern: string }>;

  constructor(text: string) {
    this.rules = text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => {
        const negate = line.startsWith("!");
        const pattern = (negate ? line.slice(1) : line).trim().replace(/^\/+/, "").replace(/\/+$/, "");
        return { negate, re: globToRegExp(pattern), pattern };
      });
  }

  /** Whether `path` (relative to the build context, with /) is left out of the build context. */
  excludes(path: string): boolean {
    const segments = path.split("/");
    const candidates = segments.map((_, i) => segments.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const rule of this.rules) {
      if (candidates.some((candidate) => rule.re.test(candidate))) excluded = !rule.negate;
    }
    return excluded;
  }
}

function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      // "**/" matches zero or more directories; a trailing "**" anything.
      if (pattern[i + 2] === "/") {
        re += "(?:.*/)?";
        i += 2;
      } else {
        re += ".*";
        i += 1;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
