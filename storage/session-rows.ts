import { Decision, type RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { clickhouseTime } from "./rows.js";

/**
 * One row of the `sessions` table: what one batch of events says about one session. The table is
 * an AggregatingMergeTree whose columns merge only with min, max and set union, so rows for the same
 * session from different batches combine into the session's summary, and a batch stored twice
 * (redelivery after a crash) changes nothing: max(x, x) = x.
 *
 * Counts are therefore never added up: `commands` is the highest command number (relays number
 * commands 1, 2, 3, …), errors are the set of seqs that carried one.
 */
export interface SessionRow {
  session_id: string;
  /** The batch's earliest event: min over the session is its start (time never goes backwards). */
  started_at: string;
  /** The session_end's time; 1970-01-01 (0) while the session runs. */
  ended_at: string;
  // From session_start; empty in rows of batches without it, and max() prefers any non-empty value.
  user: string;
  groups: string[];
  connection: string;
  connection_type: string;
  segment: string;
  relay_id: string;
  hub_id: string;
  client_address: string;
  target: string;
  /** The client's protocol parameters as a JSON object. */
  params: string;
  commands: number;
  /** 1 when some command was allowed / denied / sent to review; approvals: some approval was recorded. */
  allowed: number;
  denied: number;
  reviewed: number;
  approvals: number;
  /** Seqs of error events and of results that carry an error. */
  error_seqs: number[];
  end_error: string;
  last_seq: number;
}

/** DateTime64 zero: "not ended" in ended_at, and the placeholder start of a row being built. */
const EPOCH = clickhouseTime(0n);

/** The partial session rows for a batch of events: one per session in the batch. */
export function sessionRows(events: readonly RecordingEvent[]): SessionRow[] {
  const rows = new Map<string, SessionRow & { startUs: bigint }>();
  for (const ev of events) {
    let row = rows.get(ev.sessionId);
    if (!row) {
      row = { ...emptyRow(ev.sessionId), startUs: ev.timeUs };
      rows.set(ev.sessionId, row);
    }
    if (ev.timeUs < row.startUs) row.startUs = ev.timeUs;
    row.last_seq = Math.max(row.last_seq, Number(ev.seq));
    addBody(row, ev);
  }
  return [...rows.values()].map(({ startUs, ...row }) => ({ ...row, started_at: clickhouseTime(startUs) }));
}

function addBody(row: SessionRow, ev: RecordingEvent): void {
  const body = ev.body;
  switch (body?.$case) {
    case "sessionStart": {
      const s = body.value;
      Object.assign(row, {
        user: s.user,
        groups: s.groups,
        connection: s.connection,
        connection_type: s.connectionType,
        segment: s.segment,
        relay_id: s.relayId,
        hub_id: s.hubId,
        client_address: s.clientAddress,
        target: s.target,
        params: JSON.stringify(Object.fromEntries(s.params.map((p) => [p.key, p.value]))),
      });
      return;
    }
    case "command": {
      const c = body.value;
      row.commands = Math.max(row.commands, c.command);
      if (c.decision === Decision.DECISION_ALLOW) row.allowed = 1;
      if (c.decision === Decision.DECISION_DENY) row.denied = 1;
      if (c.decision === Decision.DECISION_REVIEW) row.reviewed = 1;
      return;
    }
    case "approval":
      row.approvals = 1;
      return;
    case "result":
      if (body.value.error?.code || body.value.error?.message) row.error_seqs.push(Number(ev.seq));
      return;
    case "error":
      row.error_seqs.push(Number(ev.seq));
      return;
    case "sessionEnd":
      row.ended_at = clickhouseTime(ev.timeUs);
      row.end_error = body.value.error;
      row.commands = Math.max(row.commands, body.value.commands);
      return;
    default:
      return;
  }
}

function emptyRow(sessionId: string): SessionRow {
  return {
    session_id: sessionId,
    started_at: EPOCH,
    ended_at: EPOCH,
    user: "",
    groups: [],
    connection: "",
    connection_type: "",
    segment: "",
    relay_id: "",
    hub_id: "",
    client_address: "",
    target: "",
    params: "",
    commands: 0,
    allowed: 0,
    denied: 0,
    reviewed: 0,
    approvals: 0,
    error_seqs: [],
    end_error: "",
    last_seq: 0,
  };
}
