import { formatDuration } from "../../../lib/duration.js";
import type { Logger } from "../../../lib/log.js";
import type { ApprovalService } from "./service.js";
import { effectiveStatus, type ApprovalRecord } from "./types.js";

export interface WebhookConfig {
  url: string;
  headers?: Record<string, string>;
}

/**
 * Post every new request and every decision to a webhook, in a payload Slack's incoming webhooks
 * accept (`text` plus `blocks`); other receivers get the full record under `approval`. Delivery is
 * best effort with a short timeout: a slow receiver never holds up a decision.
 */
export function notifyWebhook(service: ApprovalService, hook: WebhookConfig, apiUrl: () => string, log: Logger): void {
  const seen = new Map<string, string>();
  service.on("change", (rec) => {
    const status = effectiveStatus(rec);
    if (seen.get(rec.id) === status) return; // one message per state change per hub
    seen.set(rec.id, status);
    const body = JSON.stringify(slackPayload(rec, status, apiUrl()));
    fetch(hook.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...hook.headers },
      body,
      signal: AbortSignal.timeout(5000),
    })
      .then((res) => {
        if (!res.ok) log.warn({ id: rec.id, status: res.status }, "approval webhook answered with an error");
      })
      .catch((err: unknown) => log.warn({ id: rec.id, err: (err as Error).message }, "approval webhook failed"));
  });
}

function slackPayload(rec: ApprovalRecord, status: string, api: string) {
  const what =
    rec.kind === "access"
      ? `access to *${rec.connection}* for ${formatDuration(rec.durationMs ?? 0)}`
      : `\`${rec.command ?? ""}\` on *${rec.connection}*`;
  const text =
    status === "pending"
      ? `${rec.requester.subject} requests ${what} (${rec.policy}). Approvers: ${rec.approvers.groups.join(", ")}. vigil approvals approve ${rec.id}`
      : `Request ${rec.id} by ${rec.requester.subject} for ${what} is ${status}${rec.decisions.length ? ` (${rec.decisions.map((d) => `${d.by}: ${d.verdict}`).join(", ")})` : ""}.`;
  return {
    text,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text } },
      ...(rec.reason ? [{ type: "context", elements: [{ type: "mrkdwn", text: `Reason: ${rec.reason}` }] }] : []),
      { type: "context", elements: [{ type: "mrkdwn", text: `${api}/api/v1/approvals/${rec.id}` }] },
    ],
    approval: { ...rec, effectiveStatus: status },
  };
}
