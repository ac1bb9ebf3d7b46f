import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { accessRuleFor, type Approvers, type PolicyConnection } from "../../../lib/policy/compile.js";
import { globsToRegExp } from "../../../lib/policy/glob.js";
import type { Identity } from "../identity/identity.js";
import type { PolicyStore } from "../policy/store.js";
import type { ApprovalStore } from "./store.js";
import { effectiveStatus, type ApprovalRecord, type ApprovalStatus } from "./types.js";

/**
 * Just-in-time approvals: time-bounded access requests (and, with the protocol engines, held
 * commands). Records live in the ApprovalStore, so any hub can decide any request; every hub sees
 * every change and emits "change" (for notifications) and "grants" (when access starts or ends).
 */
export class ApprovalService extends EventEmitter<{ change: [ApprovalRecord]; grants: [] }> {
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: ApprovalStore,
    private readonly policies: PolicyStore,
    private readonly log: Logger,
  ) {
    super();
    store.on("change", (rec) => this.onChange(rec));
    for (const rec of store.list()) this.scheduleGrantEnd(rec);
  }

  /** `vigil access request`: ask for connect on `connection` for `durationMs`, under the policy that allows asking. */
  async requestAccess(
    who: Identity,
    connection: PolicyConnection,
    durationMs: number,
    reason: string,
  ): Promise<ApprovalRecord> {
    const rule = accessRuleFor(this.policies.current, who, connection);
    if (!rule)
      throw new VigilError("forbidden", `no policy lets ${who.subject} request access to "${connection.name}"`);
    if (durationMs > rule.maxDurationMs) {
      throw new VigilError(
        "bad_request",
        `policy ${rule.policy} allows access for at most ${Math.round(rule.maxDurationMs / 60000)}m`,
      );
    }
    return this.create(
      who,
      { kind: "access", connection: connection.name, policy: rule.policy, reason, durationMs },
      rule.approvers,
    );
  }

  /**
   * A relay holds a command that met a `review` rule: record it for the rule's approvers. Who and
   * where come from the hub's own record of the session, never from the relay.
   */
  async requestCommand(
    who: Identity,
    connection: string,
    sessionId: string,
    rule: { id: string; approvers: Approvers },
    command: string,
  ): Promise<ApprovalRecord> {
    return this.create(who, { kind: "command", connection, policy: rule.id, command, sessionId }, rule.approvers);
  }

  /** Store a new pending request for `approvers`, with its decision deadline, and audit it. */
  private async create(
    who: Identity,
    request: Pick<ApprovalRecord, "kind" | "connection" | "policy"> &
      Partial<Pick<ApprovalRecord, "reason" | "durationMs" | "command" | "sessionId">>,
    approvers: Approvers,
  ): Promise<ApprovalRecord> {
    const now = Date.now();
    const rec: ApprovalRecord = {
      id: randomUUID(),
      status: "pending",
      requester: { subject: who.subject, groups: [...who.groups] },
      ...request,
      approvers: { groups: [...approvers.groups], count: approvers.count },
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + approvers.timeoutMs).toISOString(),
      decisions: [],
    };
    await this.store.create(rec);
    this.log.info(
      {
        audit: "approval.requested",
        id: rec.id,
        kind: rec.kind,
        requester: who.subject,
        connection: rec.connection,
        policy: rec.policy,
      },
      "approval requested",
    );
    return rec;
  }

  /**
   * Resolves with the record once it is decided (on any hub) or has expired; an expired request is
   * a denial. `signal` stops waiting (the session ended).
   */
  waitForDecision(id: string, signal?: AbortSignal): Promise<ApprovalRecord & { effectiveStatus: ApprovalStatus }> {
    return new Promise((resolve, reject) => {
      const rec = this.store.get(id);
      if (!rec) return reject(new VigilError("not_found", `no approval ${id}`));
      const done = (r: ApprovalRecord, at = Date.now()) => {
        const status = effectiveStatus(r, at);
        if (status === "pending") return;
        cleanup();
        resolve({ ...r, effectiveStatus: status });
      };
      const onChange = (r: ApprovalRecord) => r.id === id && done(r);
      const onAbort = () => (cleanup(), reject(new VigilError("client_gone", "the session ended")));
      const cleanup = () => {
        clearTimeout(timer);
        this.off("change", onChange);
        signal?.removeEventListener("abort", onAbort);
      };
      // Expiry changes nothing in the store: a timer notices it, and a request still pending then is expired.
      const expiresAt = Date.parse(rec.expiresAt);
      const timer = setTimeout(() => done(this.store.get(id) ?? rec, expiresAt), Math.max(0, expiresAt - Date.now()));
      timer.unref();
      this.on("change", onChange);
      signal?.addEventListener("abort", onAbort);
      done(rec);
    });
  }

  /** Approve or deny. The requester never decides their own request; approvers must be in the approver groups. */
  async decide(
    id: string,
    who: Identity,
    verdict: "approve" | "deny",
    reason: string | undefined,
  ): Promise<ApprovalRecord> {
    const rec = this.store.get(id);
    if (!rec) throw new VigilError("not_found", `no approval ${id}`);
    this.checkApprover(rec, who);
    const updated = await this.store.update(id, (cur) => {
      const status = effectiveStatus(cur);
      if (status !== "pending") throw new VigilError("conflict", `approval ${id} is already ${status}`);
      if (cur.decisions.some((d) => d.by === who.subject))
        throw new VigilError("conflict", `${who.subject} has already decided approval ${id}`);
      const at = new Date().toISOString();
      cur.decisions.push({ by: who.subject, verdict, ...(reason ? { reason } : {}), at });
      const approvals = cur.decisions.filter((d) => d.verdict === "approve").length;
      if (verdict === "deny" || approvals >= cur.approvers.count) {
        cur.status = verdict === "deny" ? "denied" : "approved";
        cur.decidedAt = at;
        if (cur.status === "approved" && cur.kind === "access")
          cur.grantExpiresAt = new Date(Date.now() + cur.durationMs!).toISOString();
      }
      return cur;
    });
    this.log.info({ audit: `approval.${verdict}`, id, by: who.subject, status: updated.status }, "approval decided");
    return updated;
  }

  /** A held command's session ended while it waited: close the request so nobody approves what will never run. */
  async cancel(id: string, reason: string): Promise<void> {
    await this.store.update(id, (cur) => {
      if (effectiveStatus(cur) !== "pending") return cur;
      cur.status = "cancelled";
      cur.decidedAt = new Date().toISOString();
      cur.reason = cur.reason ? `${cur.reason}; ${reason}` : reason;
      return cur;
    });
    this.log.info({ audit: "approval.cancelled", id, reason }, "approval cancelled");
  }

  get(id: string): ApprovalRecord | undefined {
    return this.store.get(id);
  }

  /** What `who` may see: their own requests, the ones they may decide, or everything for admins. */
  list(who: Identity, isAdmin: boolean, status?: string): (ApprovalRecord & { effectiveStatus: string })[] {
    const now = Date.now();
    return this.store
      .list()
      .filter((r) => isAdmin || r.requester.subject === who.subject || this.mayApprove(r, who))
      .map((r) => ({ ...r, effectiveStatus: effectiveStatus(r, now) }))
      .filter((r) => !status || r.effectiveStatus === status)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Ids of approved, unexpired access requests of `subject` for `connection`: grants for the compiler. */
  activeGrants(subject: string, connection: string, now = Date.now()): string[] {
    return this.store
      .list()
      .filter(
        (r) =>
          r.kind === "access" &&
          r.status === "approved" &&
          r.requester.subject === subject &&
          r.connection === connection &&
          Date.parse(r.grantExpiresAt!) > now,
      )
      .map((r) => r.id);
  }

  close(): void {
    for (const t of this.expiryTimers.values()) clearTimeout(t);
  }

  private mayApprove(rec: ApprovalRecord, who: Identity): boolean {
    const re = globsToRegExp(rec.approvers.groups);
    return who.groups.some((g) => re.test(g));
  }

  private checkApprover(rec: ApprovalRecord, who: Identity): void {
    if (rec.requester.subject === who.subject)
      throw new VigilError("forbidden", "you cannot approve or deny your own request");
    if (!this.mayApprove(rec, who)) {
      throw new VigilError(
        "forbidden",
        `${who.subject} is not in an approver group (${rec.approvers.groups.join(", ")})`,
      );
    }
  }

  private onChange(rec: ApprovalRecord): void {
    this.emit("change", rec);
    if (rec.kind === "access" && rec.status === "approved") {
      this.scheduleGrantEnd(rec);
      this.emit("grants");
    }
  }

  /** When an access grant ends, recompile sessions so the relay ends the ones it was holding open. */
  private scheduleGrantEnd(rec: ApprovalRecord): void {
    if (rec.kind !== "access" || rec.status !== "approved" || this.expiryTimers.has(rec.id)) return;
    const ms = Date.parse(rec.grantExpiresAt!) - Date.now();
    if (ms <= 0) return;
    const timer = setTimeout(() => {
      this.expiryTimers.delete(rec.id);
      this.log.info(
        { audit: "access.expired", id: rec.id, subject: rec.requester.subject, connection: rec.connection },
        "access grant expired",
      );
      this.emit("grants");
    }, ms);
    timer.unref();
    this.expiryTimers.set(rec.id, timer);
  }
}
