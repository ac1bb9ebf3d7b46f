import { randomUUID } from "node:crypto";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { compilePolicy, type CompiledPolicy, type PolicyConnection } from "../../../lib/policy/compile.js";
import type { PolicySet } from "../../../lib/policy/load.js";
import type { Identity } from "../identity/identity.js";
import type { PolicyStore } from "../policy/store.js";
import type { RelayRecord, RelayRegistry } from "../relays/registry.js";
import type { FrameCall } from "../../../lib/tunnel/frames.js";
import type { TunnelBroker } from "./broker.js";

export interface OpenedSession {
  id: string;
  relay: RelayRecord;
  tunnel: FrameCall;
  /** Call once when the session has ended, to release its slot on the relay. */
  release(): void;
}

export interface ActiveSession {
  identity: Identity;
  connection: PolicyConnection;
  relay: RelayRecord;
  /** The compiled policy the relay enforces now, and its JSON as sent. */
  compiled: CompiledPolicy;
  policy: string;
  /** Aborted when the session ends (waiting approvals stop waiting). */
  ended: AbortSignal;
}

/** Approved access requests, which grant connect like a policy does until they expire. */
export interface GrantSource {
  activeGrants(subject: string, connection: string): string[];
  on(event: "grants", listener: () => void): unknown;
}

// Failures that say "this relay", not "this connection": worth one more try elsewhere.
const RETRYABLE = new Set(["relay_lost", "tunnel_timeout", "relay_draining", "relay_unavailable"]);

/**
 * Opens sessions on relays for every front door: route, check the connect grant, compile the policy
 * for (identity, connection), ask the relay, fail over once. Keeps running sessions' policies current.
 */
export class SessionRouter {
  private readonly active = new Map<string, ActiveSession>();

  constructor(
    private readonly registry: RelayRegistry,
    private readonly broker: TunnelBroker,
    private readonly policies: PolicyStore,
    private readonly grants: GrantSource,
    private readonly log: Logger,
  ) {
    policies.on("change", (set) => this.pushPolicies(set));
    grants.on("grants", () => this.pushPolicies(policies.current));
  }

  /**
   * @param params protocol parameters the client sent, for the relay's engine (postgres: database,
   * application_name…)
   */
  async open(
    identity: Identity,
    connection: string,
    clientAddress: string,
    params: Record<string, string> = {},
  ): Promise<OpenedSession> {
    const id = randomUUID();
    const tried = new Set<string>();
    let lastError: VigilError | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      let relay: RelayRecord;
      try {
        relay = this.registry.route(connection, tried);
      } catch (err) {
        throw lastError ?? err;
      }
      tried.add(relay.id);
      const target = describeConnection(relay, connection);
      const compiled = compilePolicy(
        this.policies.current,
        identity,
        target,
        this.grants.activeGrants(identity.subject, connection),
      );
      if (!compiled.connect) {
        throw new VigilError("forbidden", `no policy grants ${identity.subject} connect to "${connection}"`);
      }
      const policy = JSON.stringify(compiled);
      relay.activeSessions++;
      try {
        const tunnel = await this.broker.open(relay, {
          sessionId: id,
          connection,
          identity: { subject: identity.subject, groups: identity.groups, issuer: identity.issuer },
          policy: Buffer.from(policy),
          clientAddress,
          params,
        });
        const ended = new AbortController();
        this.active.set(id, { identity, connection: target, relay, compiled, policy, ended: ended.signal });
        let released = false;
        return {
          id,
          relay,
          tunnel,
          release: () => {
            if (released) return;
            released = true;
            relay.activeSessions--;
            this.active.delete(id);
            ended.abort();
          },
        };
      } catch (err) {
        relay.activeSessions--;
        if (!(err instanceof VigilError) || !RETRYABLE.has(err.code)) throw err;
        this.log.warn({ session: id, relay: relay.id, code: err.code }, "relay failed to open session; trying another");
        lastError = err;
      }
    }
    throw lastError!;
  }

  /** A running session, as this hub opened it (undefined for sessions of other hubs). */
  get(sessionId: string): ActiveSession | undefined {
    return this.active.get(sessionId);
  }

  /** After a reload or a grant change, recompile every running session's policy and send the ones that changed. */
  private pushPolicies(set: PolicySet): void {
    for (const [sessionId, s] of this.active) {
      const compiled = compilePolicy(
        set,
        s.identity,
        s.connection,
        this.grants.activeGrants(s.identity.subject, s.connection.name),
      );
      const policy = JSON.stringify(compiled);
      if (policy === s.policy) continue;
      s.policy = policy;
      s.compiled = compiled;
      s.relay.send?.({ msg: { $case: "policyUpdate", value: { sessionId, policy: Buffer.from(policy) } } });
      this.log.info({ session: sessionId, relay: s.relay.id }, "policy update sent to running session");
    }
  }
}

function describeConnection(relay: RelayRecord, name: string): PolicyConnection {
  const info = relay.connections.find((c) => c.name === name)!;
  return { name, type: info.type, labels: info.labels, segment: relay.segment };
}
