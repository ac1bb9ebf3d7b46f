import type {
  Command,
  HttpCommand,
  ShellCommand,
  ShellSimpleCommand,
  SqlCommand,
  SqlStatement,
  SshEnvCommand,
  SshForwardCommand,
} from "./command.js";
import type { Approvers, CompiledPolicy, CompiledRule } from "./compile.js";
import { globsToRegExp } from "./glob.js";

/** Masks to apply to results: union of every matching mask rule, split by where they apply. */
export interface MaskPlan {
  live: MaskTargets;
  record: MaskTargets;
}

export interface MaskTargets {
  detectors: string[];
  columns: string[];
  fields: string[];
}

export type Decision =
  | { effect: "allow"; rule?: string; masks: MaskPlan }
  | { effect: "deny"; rule: string; reason: string }
  | { effect: "review"; rule: string; approvers: Approvers; masks: MaskPlan };

/** A rule with its globs compiled once, so evaluation does no parsing. */
interface PreparedRule {
  rule: CompiledRule;
  test: (cmd: Command) => boolean;
}

export interface PreparedPolicy {
  policy: CompiledPolicy;
  rules: PreparedRule[];
  /** Mask plan of mask rules without a command matcher: the same for every command. */
  baseMasks: MaskPlan;
}

/** Rule id for input the parser could not read: unparseable commands never run. */
export const UNPARSEABLE_RULE = "vigil/unparseable-command";

export function preparePolicy(policy: CompiledPolicy): PreparedPolicy {
  const rules = policy.rules.map((rule) => ({ rule, test: matcherFor(rule) }));
  const baseMasks = emptyMasks();
  for (const r of policy.rules) if (r.effect === "mask" && isUnconditional(r)) addMask(baseMasks, r);
  return { policy, rules, baseMasks };
}

/**
 * Decide one command: pure, no I/O. Deny overrides review overrides allow; a command no rule
 * mentions is allowed (the session itself was granted by a connect policy).
 */
export function evaluate(prepared: PreparedPolicy, cmd: Command): Decision {
  const unreadable = unreadableReason(cmd);
  if (unreadable !== undefined) return { effect: "deny", rule: UNPARSEABLE_RULE, reason: unreadable };
  let review: CompiledRule | undefined;
  let allow: CompiledRule | undefined;
  let masks = prepared.baseMasks;
  // Indexed loops here and in the SQL matcher: a for-of allocated an iterator result per step.
  const rules = prepared.rules;
  for (let i = 0; i < rules.length; i++) {
    const { rule, test } = rules[i]!;
    if (rule.effect === "mask" && isUnconditional(rule)) continue; // already in baseMasks
    if (!test(cmd)) continue;
    switch (rule.effect) {
      case "deny":
        return { effect: "deny", rule: rule.id, reason: `denied by ${rule.id}` };
      case "review":
        review ??= rule;
        break;
      case "allow":
        allow ??= rule;
        break;
      case "mask":
        if (masks === prepared.baseMasks) masks = cloneMasks(masks);
        addMask(masks, rule);
        break;
    }
  }
  if (review) return { effect: "review", rule: review.id, approvers: review.approvers!, masks };
  return allow ? { effect: "allow", rule: allow.id, masks } : { effect: "allow", masks };
}

// A program name that the shell would still expand ($X, `cmd`, globs, braces) cannot be matched.
const EXPANDS = /[$`*?[{]/;

/** Why a command cannot be judged, if it cannot: the parser failed, or what runs is not knowable. */
function unreadableReason(cmd: Command): string | undefined {
  if (cmd.parseError !== undefined) return `command could not be parsed: ${cmd.parseError}`;
  if (cmd.protocol === "shell") {
    const hidden = cmd.commands.find((c) => EXPANDS.test(c.argv[0] ?? ""));
    if (hidden) return `the program name "${hidden.argv[0]}" depends on shell expansion`;
  }
  return undefined;
}

const isUnconditional = (r: CompiledRule) => !r.sql && !r.shell && !r.ssh && !r.http && !r.kubernetes;

function matcherFor(rule: CompiledRule): (cmd: Command) => boolean {
  if (rule.sql) return sqlMatcher(rule.sql);
  if (rule.shell) return shellMatcher(rule.shell);
  if (rule.ssh) return sshMatcher(rule.ssh);
  if (rule.kubernetes) return kubernetesMatcher(rule.kubernetes);
  if (rule.http) return httpMatcher(rule.http);
  return () => true;
}

const optionalRe = (globs: readonly string[] | undefined, flags = "") =>
  globs ? globsToRegExp(globs, flags) : undefined;

function sqlMatcher(m: NonNullable<CompiledRule["sql"]>): (cmd: Command) => boolean {
  const kinds = m.statements ? new Set(m.statements) : undefined;
  const tables = optionalName(m.tables);
  const functions = optionalName(m.functions);
  const one = (s: SqlStatement): boolean =>
    (!kinds || kinds.has(s.kind)) &&
    (m.ddl === undefined || s.ddl === m.ddl) &&
    (m.where === undefined || (m.where === "absent" ? !s.hasWhere : s.hasWhere)) &&
    (!tables || s.tablesRead.some(tables) || s.tablesWritten.some(tables)) &&
    (!functions || s.functions.some(functions));
  // A loop, not some() with a callback: this runs for every rule on every statement.
  const any = (list: readonly SqlStatement[]): boolean => {
    for (let i = 0; i < list.length; i++) if (one(list[i]!) || any(list[i]!.nested)) return true;
    return false;
  };
  return (cmd) => cmd.protocol === "sql" && any((cmd as SqlCommand).statements);
}

/** Case-insensitive globs on a possibly schema-qualified name: "public.users" also matches globs for "users". */
function optionalName(globs: readonly string[] | undefined): ((name: string) => boolean) | undefined {
  const re = optionalRe(globs, "i");
  return re && ((name) => re.test(name) || re.test(name.slice(name.lastIndexOf(".") + 1)));
}

function shellMatcher(m: NonNullable<CompiledRule["shell"]>): (cmd: Command) => boolean {
  const commands = optionalRe(m.commands);
  const args = optionalRe(m.args);
  const flags = m.flags ? new Set(m.flags) : undefined;
  const pattern = m.pattern !== undefined ? new RegExp(m.pattern) : undefined;
  const one = (c: ShellSimpleCommand): boolean => {
    const argv0 = c.argv[0];
    if (argv0 === undefined) return false;
    if (commands && !commands.test(argv0.slice(argv0.lastIndexOf("/") + 1))) return false;
    if (!flags && !args) return true;
    const { present, positional } = splitArgs(c.argv);
    return (!flags || [...flags].some((f) => present.has(f))) && (!args || positional.some((a) => args.test(a)));
  };
  return (cmd) => {
    if (cmd.protocol !== "shell") return false;
    const sh = cmd as ShellCommand;
    if (pattern && !pattern.test(sh.text)) return false;
    return !commands && !flags && !args ? true : sh.commands.some(one);
  };
}

/** `-rf --force -- -x` → flags {r, f, force}, positional ["-x"]. */
function splitArgs(argv: readonly string[]): { present: Set<string>; positional: string[] } {
  const present = new Set<string>();
  const positional: string[] = [];
  let options = true;
  for (const a of argv.slice(1)) {
    if (options && a === "--") options = false;
    else if (options && a.startsWith("--")) present.add(a.slice(2).split("=")[0]!);
    else if (options && a.length > 1 && a.startsWith("-")) for (const ch of a.slice(1)) present.add(ch);
    else positional.push(a);
  }
  return { present, positional };
}

function sshMatcher(m: NonNullable<CompiledRule["ssh"]>): (cmd: Command) => boolean {
  if (m.env) {
    const names = globsToRegExp(m.env);
    return (cmd) => cmd.protocol === "ssh-env" && names.test((cmd as SshEnvCommand).name);
  }
  const directions = m.forward ?? [];
  const hosts = optionalRe(m.hosts);
  return (cmd) => {
    if (cmd.protocol !== "ssh-forward") return false;
    const f = cmd as SshForwardCommand;
    return directions.includes(f.direction) && (!hosts || hosts.test(`${f.host}:${f.port}`));
  };
}

function httpMatcher(m: NonNullable<CompiledRule["http"]>): (cmd: Command) => boolean {
  const methods = m.methods ? new Set(m.methods) : undefined;
  const paths = optionalRe(m.paths);
  return (cmd) => cmd.protocol === "http" && (!methods || methods.has(cmd.method)) && (!paths || paths.test(cmd.path));
}

function kubernetesMatcher(m: NonNullable<CompiledRule["kubernetes"]>): (cmd: Command) => boolean {
  const verbs = optionalRe(m.verbs);
  const resources = optionalRe(m.resources);
  const namespaces = optionalRe(m.namespaces);
  const names = optionalRe(m.names);
  const groups = m.groups ? new Set(m.groups) : undefined;
  return (cmd) => {
    const k = cmd.protocol === "http" ? (cmd as HttpCommand).kubernetes : undefined;
    return (
      !!k &&
      (!verbs || verbs.test(k.verb)) &&
      (!resources || resources.test(k.resource)) &&
      (!groups || groups.has(k.group)) &&
      (!namespaces || (k.namespace !== undefined && namespaces.test(k.namespace))) &&
      (!names || (k.name !== undefined && names.test(k.name)))
    );
  };
}

const emptyMasks = (): MaskPlan => ({
  live: { detectors: [], columns: [], fields: [] },
  record: { detectors: [], columns: [], fields: [] },
});
const cloneMasks = (m: MaskPlan): MaskPlan => ({
  live: { detectors: [...m.live.detectors], columns: [...m.live.columns], fields: [...m.live.fields] },
  record: { detectors: [...m.record.detectors], columns: [...m.record.columns], fields: [...m.record.fields] },
});

function addMask(plan: MaskPlan, rule: CompiledRule): void {
  const mask = rule.mask!;
  const targets =
    mask.apply === "live" ? [plan.live] : mask.apply === "record" ? [plan.record] : [plan.live, plan.record];
  for (const t of targets) {
    union(t.detectors, mask.detectors ?? []);
    union(t.columns, mask.columns ?? []);
    union(t.fields, mask.fields ?? []);
  }
}

function union(into: string[], add: readonly string[]): void {
  for (const x of add) if (!into.includes(x)) into.push(x);
}
