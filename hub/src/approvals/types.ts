/** One request for a human decision: time-bounded access to a connection, or one held command. */
export interface ApprovalRecord {
  id: string;
  kind: "access" | "command";
  /** As stored; "expired" is derived from `expiresAt` (see effectiveStatus). */
  /** "cancelled": the held command's session ended before anyone decided; nothing will run. */
  status: "pending" | "approved" | "denied" | "cancelled";
  requester: { subject: string; groups: string[] };
  connection: string;
  /** The policy (access) or rule (command) that asked for the approval. */
  policy: string;
  reason?: string;
  /** kind access: how long the grant lasts once approved. */
  durationMs?: number;
  /** kind command: the held command (masked) and its session. */
  command?: string;
  sessionId?: string;
  approvers: { groups: string[]; count: number };
  createdAt: string;
  /** Decision deadline: a request still pending then is expired, which means denied. */
  expiresAt: string;
  decisions: { by: string; verdict: "approve" | "deny"; reason?: string; at: string }[];
  decidedAt?: string;
  /** kind access, once approved: the grant ends then. */
  grantExpiresAt?: string;
}

export type ApprovalStatus = ApprovalRecord["status"] | "expired";

export function effectiveStatus(rec: ApprovalRecord, now = Date.now()): ApprovalStatus {
  return rec.status === "pending" && now >= Date.parse(rec.expiresAt) ? "expired" : rec.status;
}
