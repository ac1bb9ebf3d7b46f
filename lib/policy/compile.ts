import { parseDuration } from "../duration.js";
import { globsToRegExp } from "./glob.js";
import type { PolicySet } from "./load.js";
import type {
  ConnectionMatch,
  HttpMatch,
  KubernetesMatch,
  Match,
  MaskRule,
  ShellMatch,
  SqlMatch,
  SshMatch,
} from "./schema.js";

/** Who is asking, as the policy sees it. */
export interface PolicySubject {
  subject: string;
  groups: readonly string[];
}

/** The connection a session goes to, with the segment of the relay it was routed to. */
export interface PolicyConnection {
  name: string;
  type: string;
  labels: Readonly<Record<string, string>>;
  segment: string;
}

export interface Approvers {
  groups: string[];
  count: number;
  timeoutMs: number;
}

/** One rule, reduced to what the relay needs. `id` is "policy/rule". */
export interface CompiledRule {
  id: string;
  effect: "allow" | "deny" | "review" | "mask";
  approvers?: Approvers;
  mask?: MaskRule;
  sql?: SqlMatch;
  shell?: ShellMatch;
  ssh?: SshMatch;
  http?: HttpMatch;
  kubernetes?: KubernetesMatch;
}

/**
 * The policy for one (identity, connection): whether it may connect (and which policies say so), and
 * the rules the relay evaluates per command. Plain JSON: it travels in OpenTunnel.policy.
 */
export interface CompiledPolicy {
  v: 1;
  connect: boolean;
  grantedBy: string[];
  rules: CompiledRule[];
}

// Which rule matchers a connection type can ever meet; others are dropped at compile time.
const MATCHERS_FOR: Record<string, readonly ("sql" | "shell" | "ssh" | "http" | "kubernetes")[]> = {
  postgres: ["sql"],
  ssh: ["shell", "ssh"],
  http: ["http"],
  kubernetes: ["http", "kubernetes"],
  tcp: [],
};

/**
 * @param accessGrants ids of approved, unexpired access requests of `who` for this connection: each
 * grants connect like a policy does ("access:<id>").
 */
export function compilePolicy(
  set: PolicySet,
  who: PolicySubject,
  connection: PolicyConnection,
  accessGrants: readonly string[] = [],
): CompiledPolicy {
  const applicable = set.policies.filter((p) => matches(p.match, who, connection));
  const usable = MATCHERS_FOR[connection.type] ?? [];
  const rules: CompiledRule[] = [];
  for (const p of applicable) {
    for (const r of p.rules) {
      const matcher = (["sql", "shell", "ssh", "http", "kubernetes"] as const).find((m) => r[m] !== undefined);
      if (matcher && !usable.includes(matcher)) continue;
      const rule: CompiledRule = { id: `${p.name}/${r.name}`, effect: r.effect };
      if (r.approvers)
        rule.approvers = {
          groups: r.approvers.groups,
          count: r.approvers.count,
          timeoutMs: parseDuration(r.approvers.timeout) * 1000,
        };
      if (r.mask) rule.mask = r.mask;
      if (matcher) Object.assign(rule, { [matcher]: r[matcher] });
      rules.push(rule);
    }
  }
  const grantedBy = [
    ...applicable.filter((p) => p.connect).map((p) => p.name),
    ...accessGrants.map((id) => `access:${id}`),
  ];
  return { v: 1, connect: grantedBy.length > 0, grantedBy, rules };
}

/** The access rule (approvers, longest duration) under which `who` may request access to a connection. */
export function accessRuleFor(
  set: PolicySet,
  who: PolicySubject,
  connection: PolicyConnection,
): { policy: string; approvers: Approvers; maxDurationMs: number } | undefined {
  const p = set.policies.find((p) => p.access && matches(p.match, who, connection));
  if (!p?.access) return undefined;
  const a = p.access.approvers;
  return {
    policy: p.name,
    approvers: { groups: a.groups, count: a.count, timeoutMs: parseDuration(a.timeout) * 1000 },
    maxDurationMs: parseDuration(p.access.maxDuration) * 1000,
  };
}

function matches(match: Match, who: PolicySubject, connection: PolicyConnection): boolean {
  if (match.subjects && !globsToRegExp(match.subjects).test(who.subject)) return false;
  if (match.groups) {
    const re = globsToRegExp(match.groups);
    if (!who.groups.some((g) => re.test(g))) return false;
  }
  return !match.connections || match.connections.some((c) => connectionMatches(c, connection));
}

function connectionMatches(m: ConnectionMatch, c: PolicyConnection): boolean {
  if (m.name !== undefined && !globsToRegExp([m.name]).test(c.name)) return false;
  if (m.types && !(m.types as string[]).includes(c.type)) return false;
  if (m.segments && !globsToRegExp(m.segments).test(c.segment)) return false;
  if (m.labels && !Object.entries(m.labels).every(([k, v]) => c.labels[k] === v)) return false;
  return true;
}
