import type { ApprovalRequest, ApprovalUpdate } from "../../../proto/gen/vigil/v1/relay.js";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import type { RelayRecord } from "../relays/registry.js";
import type { SessionRouter } from "../tunnels/sessions.js";
import type { ApprovalService } from "./service.js";

/**
 * A relay holds a command for review: create the approval from the hub's own view of the session
 * (identity, connection, and the approvers of the rule in the policy it compiled), answer "pending"
 * with its id, then the final status once approvers on any hub decide or the request times out.
 * Anything but "approved" keeps the command from running.
 */
export async function handleCommandApproval(
  relay: RelayRecord,
  req: ApprovalRequest,
  deps: { sessions: SessionRouter; approvals: ApprovalService; log: Logger },
): Promise<void> {
  const reply = (u: Partial<ApprovalUpdate>) =>
    relay.send?.({
      msg: {
        $case: "approvalUpdate",
        value: {
          sessionId: req.sessionId,
          requestId: req.requestId,
          approvalId: "",
          status: "error",
          decisions: [],
          message: "",
          ...u,
        },
      },
    });
  const log = deps.log.child({ session: req.sessionId, relay: relay.id, rule: req.rule });
  const session = deps.sessions.get(req.sessionId);
  if (!session || session.relay.id !== relay.id) {
    log.warn("approval request for a session this hub did not open");
    return reply({ message: "this hub has no such session" });
  }
  const rule = session.compiled.rules.find((r) => r.id === req.rule && r.effect === "review" && r.approvers);
  if (!rule) return reply({ message: `rule ${req.rule} is not a review rule of this session's policy` });
  let approvalId = "";
  try {
    const rec = await deps.approvals.requestCommand(
      session.identity,
      session.connection.name,
      req.sessionId,
      { id: rule.id, approvers: rule.approvers! },
      req.command,
    );
    approvalId = rec.id;
    reply({ status: "pending", approvalId });
    const done = await deps.approvals.waitForDecision(rec.id, session.ended);
    reply({
      status: done.effectiveStatus,
      approvalId,
      decisions: done.decisions.map((d) => ({ by: d.by, verdict: d.verdict, reason: d.reason ?? "", at: d.at })),
    });
  } catch (err) {
    if (err instanceof VigilError && err.code === "client_gone") {
      // The client left while its command was held. The relay may still be holding it (a paused client
      // stream hides the end), and nobody on this hub will answer any more: release it, never to run.
      log.info({ approval: approvalId }, "session ended while its command was held");
      reply({ approvalId, message: "the session ended while the command was held" });
      if (approvalId) {
        await deps.approvals
          .cancel(approvalId, "the session ended while the command was held")
          .catch((e: unknown) =>
            log.warn({ err: (e as Error).message, approval: approvalId }, "could not mark the approval cancelled"),
          );
      }
      return;
    }
    log.error({ err }, "approval request failed");
    reply({ approvalId, message: "the hub could not record the approval request" });
  }
}
