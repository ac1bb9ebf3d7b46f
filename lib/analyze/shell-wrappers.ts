import type { ShellSimpleCommand } from "../policy/command.js";

/*
 * Commands that run another command given in their arguments. The shell analyzer reports the wrapped command
 * in addition to the wrapper, so a rule about `rm` also sees `sudo -u root rm …`.
 */

/** The program name of argv[0] as written: "/usr/bin/rm" → "rm". */
export function commandName(argv0: string): string {
  return argv0.slice(argv0.lastIndexOf("/") + 1);
}

interface OptionSpec {
  /** Short options that take an argument (attached "-uroot" or separate "-u root"). */
  arg: string;
  long?: readonly string[];
  /** Operands between the options and the command (timeout DURATION, chroot NEWROOT). */
  operands?: number;
  /** VAR=value words allowed before the command. */
  assignments?: boolean;
}

const WRAPPERS: Readonly<Record<string, OptionSpec>> = {
  sudo: {
    arg: "CDgpRrTtUu",
    long: ["chdir", "close-from", "group", "prompt", "chroot", "role", "type", "command-timeout", "other-user", "user"],
    assignments: true,
  },
  doas: { arg: "Cu" },
  env: { arg: "uCS", long: ["unset", "chdir", "split-string"], assignments: true },
  nohup: { arg: "" },
  time: { arg: "fo", long: ["format", "output"] },
  nice: { arg: "n", long: ["adjustment"] },
  ionice: { arg: "cnp", long: ["class", "classdata", "pid"] },
  timeout: { arg: "sk", long: ["signal", "kill-after"], operands: 1 },
  xargs: {
    arg: "aEIdLnPs",
    long: ["arg-file", "delimiter", "max-lines", "max-args", "max-procs", "max-chars", "process-slot-var"],
  },
  exec: { arg: "a" },
  command: { arg: "" },
  builtin: { arg: "" },
  setsid: { arg: "" },
  stdbuf: { arg: "ioe", long: ["input", "output", "error"] },
  chroot: { arg: "", long: ["userspec", "groups"], operands: 1 },
  busybox: { arg: "" },
};

const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "fish"]);
const SHELL_OPTIONS_WITH_ARG = new Set(["-o", "+o", "-O", "+O", "--rcfile", "--init-file"]);
const FIND_EXEC = new Set(["-exec", "-execdir", "-ok", "-okdir"]);

export type Inner = ShellSimpleCommand | { script: string };

export function isName(s: string): boolean {
  if (s === "") return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const alpha = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
    if (!alpha && !(i > 0 && c >= 48 && c <= 57)) return false;
  }
  return true;
}

/** `NAME=value` → [NAME, value]. */
export function assignment(word: string): [string, string] | undefined {
  const eq = word.indexOf("=");
  return eq > 0 && isName(word.slice(0, eq)) ? [word.slice(0, eq), word.slice(eq + 1)] : undefined;
}

const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The commands a simple command runs on its behalf: argv to analyze, or a script to parse. */
export function innerCommands(cmd: ShellSimpleCommand): Inner[] {
  const { argv } = cmd;
  const name = commandName(argv[0] ?? "");
  if (SHELLS.has(name)) return shellScript(argv);
  if (name === "su") return suScript(argv);
  if (name === "eval") return argv.length > 1 ? [{ script: argv.slice(1).join(" ") }] : [];
  if (name === "find") return findExec(cmd);
  const spec = WRAPPERS[name];
  if (!spec) return [];
  const env = { ...cmd.env };
  let split: string | undefined;
  let i = 1;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const opt = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const value = eq < 0 ? undefined : a.slice(eq + 1);
      const takesArg = spec.long?.includes(opt) ?? false;
      if (takesArg && value === undefined) i++;
      if (name === "env" && opt === "split-string") split = value ?? argv[i];
    } else if (a.length > 1 && a[0] === "-") {
      for (let j = 1; j < a.length; j++) {
        if (!spec.arg.includes(a[j]!)) continue;
        const value = j < a.length - 1 ? a.slice(j + 1) : argv[++i];
        if (name === "env" && a[j] === "S") split = value;
        break;
      }
    } else break;
  }
  for (; spec.assignments && i < argv.length; i++) {
    const kv = assignment(argv[i]!);
    if (!kv) break;
    env[kv[0]] = kv[1];
  }
  const rest = argv.slice(i + (spec.operands ?? 0));
  // env -S splits its string into words that precede the remaining arguments.
  if (split !== undefined) return [{ script: [split, ...rest.map(quote)].join(" ") }];
  return rest.length > 0 ? [{ argv: rest, env }] : [];
}

/** `bash -xc 'script' name args…`: the first operand after options including c is the script. */
function shellScript(argv: string[]): Inner[] {
  let c = false;
  let i = 1;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--" || a === "-") {
      i++;
      break;
    }
    if (SHELL_OPTIONS_WITH_ARG.has(a)) i++;
    else if (a[0] === "-" && a[1] !== "-") c ||= a.includes("c");
    else if (a[0] !== "-" && a[0] !== "+") break;
  }
  const script = argv[i];
  return c && script !== undefined ? [{ script }] : [];
}

/** `su [-] [-l] [user] -c 'script'`: su accepts its options anywhere. */
function suScript(argv: string[]): Inner[] {
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith("--command=")) return [{ script: a.slice(10) }];
    const script = argv[i + 1];
    if ((a === "--command" || (a[0] === "-" && a[1] !== "-" && a.endsWith("c"))) && script !== undefined) {
      return [{ script }];
    }
  }
  return [];
}

function findExec(cmd: ShellSimpleCommand): Inner[] {
  const found: Inner[] = [];
  const { argv } = cmd;
  for (let i = 1; i < argv.length; i++) {
    if (!FIND_EXEC.has(argv[i]!)) continue;
    const start = i + 1;
    while (i + 1 < argv.length && argv[i + 1] !== ";" && argv[i + 1] !== "+") i++;
    if (i >= start) found.push({ argv: argv.slice(start, i + 1), env: { ...cmd.env } });
    i++;
  }
  return found;
}
