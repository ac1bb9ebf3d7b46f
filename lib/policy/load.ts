import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { Value } from "typebox/value";
import { LineCounter, parseDocument, type Document } from "yaml";
import { parseDuration } from "../duration.js";
import { DETECTOR_NAMES } from "../masking/detectors.js";
import { explainSchemaError, formatKey } from "../schema-errors.js";
import { SQL_STATEMENT_KINDS } from "./command.js";
import { globsToRegExp } from "./glob.js";
import { PolicyFileSchema, type Policy, type Rule } from "./schema.js";

/** A policy and where it was written, for messages ("policies/prod.yaml:12"). */
export interface SourcedPolicy extends Policy {
  source: string;
}

export interface PolicySet {
  policies: SourcedPolicy[];
  files: string[];
}

export class PolicyError extends Error {
  override readonly name = "PolicyError";
  readonly code = "VIGIL_ERR_POLICY";
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
  }
}

/** Files matching the patterns. A pattern may use `*` and `?` in its last segment only (policies/*.yaml). */
export function expandPolicyPatterns(patterns: readonly string[], cwd = process.cwd()): string[] {
  const files = new Set<string>();
  for (const pattern of patterns) {
    const full = resolve(cwd, pattern);
    const name = basename(full);
    if (!/[*?]/.test(name)) {
      if (statSync(full, { throwIfNoEntry: false })?.isFile()) files.add(full);
      continue;
    }
    const dir = dirname(full);
    const re = globsToRegExp([name]);
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      // a missing policy directory matches nothing; the caller reports an empty set
    }
    for (const entry of entries.sort()) if (re.test(entry)) files.add(join(dir, entry));
  }
  return [...files];
}

/** Load, validate and cross-check every policy file; the first problem throws a PolicyError with file:line. */
export function loadPolicies(patterns: readonly string[], cwd = process.cwd()): PolicySet {
  const files = expandPolicyPatterns(patterns, cwd);
  const policies: SourcedPolicy[] = [];
  const names = new Map<string, string>();
  for (const file of files) {
    for (const policy of parsePolicyFile(readFileSync(file, "utf8"), file)) {
      const first = names.get(policy.name);
      if (first)
        throw new PolicyError(file, lineOf(policy.source), `policy "${policy.name}" is already defined at ${first}`);
      names.set(policy.name, policy.source);
      policies.push(policy);
    }
  }
  return { policies, files };
}

/** Parse one file's text; `file` is used for messages only. */
export function parsePolicyFile(text: string, file: string): SourcedPolicy[] {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const where = (path: (string | number)[]) => lineAt(doc, lines, path);
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new PolicyError(file, lines.linePos(e.pos[0]).line, e.message.split("\n")[0]!);
  }
  const raw: unknown = doc.toJS() ?? {};
  const value = Value.Default(PolicyFileSchema, structuredClone(raw));
  const first = Value.Errors(PolicyFileSchema, value)[0];
  if (first) {
    const { path, detail } = explainSchemaError(first, value);
    throw new PolicyError(file, where(path), `${formatKey(path)}: ${detail}`);
  }
  const policies = (value as { policies: Policy[] }).policies;
  return policies.map((policy, i) => {
    checkPolicy(policy, (path, detail) => {
      throw new PolicyError(file, where(["policies", i, ...path]), `policies[${i}] (${policy.name}): ${detail}`);
    });
    return { ...policy, source: `${file}:${where(["policies", i])}` };
  });
}

type Fail = (path: (string | number)[], detail: string) => never;

const MATCHERS = ["sql", "shell", "ssh", "http", "kubernetes"] as const;

/** What the schema cannot say: one matcher per rule, effects that need their block, valid kinds and patterns. */
function checkPolicy(policy: Policy, fail: Fail): void {
  if (policy.access) {
    for (const [key, value] of [
      ["maxDuration", policy.access.maxDuration],
      ["approvers", policy.access.approvers.timeout],
    ] as const) {
      try {
        parseDuration(value);
      } catch (err) {
        fail(["access", key], (err as Error).message);
      }
    }
  }
  const ruleNames = new Set<string>();
  policy.rules.forEach((rule: Rule, r) => {
    const at = (...p: (string | number)[]) => ["rules", r, ...p];
    if (ruleNames.has(rule.name)) fail(at("name"), `rule "${rule.name}" appears twice`);
    ruleNames.add(rule.name);
    const present = MATCHERS.filter((m) => rule[m] !== undefined);
    if (present.length > 1) fail(at(present[1]!), `a rule matches one protocol; found ${present.join(" and ")}`);
    if (rule.effect === "review" && !rule.approvers)
      fail(at("effect"), "effect review needs approvers: {groups, count, timeout}");
    if (rule.effect !== "review" && rule.approvers) fail(at("approvers"), "approvers only apply to effect review");
    if (rule.effect === "mask" && !rule.mask)
      fail(at("effect"), "effect mask needs mask: {detectors | columns | fields, apply}");
    if (rule.effect !== "mask" && rule.mask) fail(at("mask"), "mask only applies to effect mask");
    if (rule.approvers) {
      try {
        parseDuration(rule.approvers.timeout);
      } catch (err) {
        fail(at("approvers", "timeout"), (err as Error).message);
      }
    }
    for (const [k, kind] of (rule.sql?.statements ?? []).entries()) {
      if (!(SQL_STATEMENT_KINDS as readonly string[]).includes(kind)) {
        fail(at("sql", "statements", k), `unknown statement kind "${kind}" (known: ${SQL_STATEMENT_KINDS.join(", ")})`);
      }
    }
    for (const [k, name] of (rule.mask?.detectors ?? []).entries()) {
      if (!(DETECTOR_NAMES as readonly string[]).includes(name)) {
        fail(at("mask", "detectors", k), `unknown detector "${name}" (known: ${DETECTOR_NAMES.join(", ")})`);
      }
    }
    if (rule.ssh) {
      const { forward, env, hosts } = rule.ssh;
      if ((forward === undefined) === (env === undefined))
        fail(at("ssh"), "an ssh rule matches either forward (port forwarding) or env (variables)");
      if (hosts && !forward) fail(at("ssh", "hosts"), "hosts only apply to forward");
    }
    if (rule.shell?.pattern !== undefined) {
      try {
        new RegExp(rule.shell.pattern);
      } catch (err) {
        fail(at("shell", "pattern"), `not a valid regular expression: ${(err as Error).message}`);
      }
    }
  });
}

/** Line of the deepest existing node on `path` (1-based). */
function lineAt(doc: Document, lines: LineCounter, path: (string | number)[]): number {
  for (let n = path.length; n >= 0; n--) {
    const segs = path.slice(0, n).map((s) => (typeof s === "string" && /^\d+$/.test(s) ? Number(s) : s));
    const node = doc.getIn(segs, true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === "object" && node.range) return lines.linePos(node.range[0]).line;
  }
  return 1;
}

function lineOf(source: string): number {
  return Number(source.slice(source.lastIndexOf(":") + 1)) || 1;
}
