import type { CompiledPolicy } from "../../lib/policy/compile.js";
import { preparePolicy, type PreparedPolicy } from "../../lib/policy/evaluate.js";

/**
 * The policy of one running session. Engines read `current` for every command; the hub replaces it
 * when policies change. Parsing and preparing happen here, once per version, never per command.
 */
export class SessionPolicy {
  private prepared: PreparedPolicy;

  constructor(bytes: Uint8Array) {
    this.prepared = parse(bytes);
    if (!this.prepared.policy.connect) throw new Error("the policy does not grant connect");
  }

  get current(): PreparedPolicy {
    return this.prepared;
  }

  /** Replace the policy; returns false (and keeps nothing new) when it no longer grants connect. */
  update(bytes: Uint8Array): boolean {
    const next = parse(bytes);
    if (next.policy.connect) this.prepared = next;
    return next.policy.connect;
  }
}

/** A missing or malformed policy is an error, never "no rules": the relay fails closed. */
function parse(bytes: Uint8Array): PreparedPolicy {
  if (bytes.length === 0) throw new Error("the hub sent no policy for this session");
  const policy = JSON.parse(Buffer.from(bytes).toString("utf8")) as CompiledPolicy;
  if (policy?.v !== 1 || !Array.isArray(policy.rules) || typeof policy.connect !== "boolean") {
    throw new Error("the hub sent a policy this relay cannot read");
  }
  return preparePolicy(policy);
}
