import { Decision, type RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { clickhouseTime, isoTime } from "./rows.js";

/**
 * One row of the `sessions` table: what one batch of events says about one session. The table is
 * an AggregatingMergeTree whose columns merge only with min, max and set union, so rows for the same
 * session from different batches combine into the session's summary, and a batch stored twice
 * (redelivery after a crash) changes nothing: max(x, x) = x.
 *
 * Counts are therefore never added up: `commands` is the highest command number (relays number
 * commands 1, 2, 3, …), errors are the set of seqs that carried one.
 */
export type SessionRow = {
  session_id: string;
  /** The batch's earliest event: min over the session is its start (time never goes backwards). */
  started_at: string;
  /** The batch's latest event: with started_at, the span replay reads (the events table is ordered by hour first). */
  last_at: string;
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
};

/** DateTime64 zero: "not ended" in ended_at, and the placeholder start of a row being built. */
const EPOCH = clickhouseTime(0n);

/** The partial session rows for a batch of events: one per session in the batch. */
export function sessionRows(events: readonly RecordingEvent[]): SessionRow[] {
  const rows = new SessionRows();
  for (const ev of events) rows.add(ev);
  return rows.rows();
}

/** `sessionRows`, one event at a time (ingest adds each event as it arrives). */
export class SessionRows {
  /** Each session's row, and its earliest and latest event time (the row's times are set by `rows`). */
  private readonly bySession = new Map<string, { row: SessionRow; firstUs: bigint; lastUs: bigint }>();

  add(ev: RecordingEvent): void {
    addBody(this.row(ev.sessionId, Number(ev.seq), ev.timeUs), ev);
  }

  /** `add` of a command event, from the fields it contributes (ingest reads them without decoding it). */
  addCommand(sessionId: string, seq: number, timeUs: bigint, command: number, decision: Decision): void {
    addCommand(this.row(sessionId, seq, timeUs), command, decision);
  }

  /** `add` of an event whose body adds nothing to the row but, when `isError`, its seq (results, output). */
  addEvent(sessionId: string, seq: number, timeUs: bigint, isError: boolean): void {
    const row = this.row(sessionId, seq, timeUs);
    if (isError) row.error_seqs.push(seq);
  }

  /**
   * The session's row, with this event's seq and time taken in. A new row is built whole, not spread
   * from another object: spreading its 22 fields took ~4.5 µs.
   */
  private row(sessionId: string, seq: number, timeUs: bigint): SessionRow {
    let entry = this.bySession.get(sessionId);
    if (!entry) {
      entry = { row: emptyRow(sessionId), firstUs: timeUs, lastUs: timeUs };
      this.bySession.set(sessionId, entry);
    }
    if (timeUs < entry.firstUs) entry.firstUs = timeUs;
    if (timeUs > entry.lastUs) entry.lastUs = timeUs;
    const row = entry.row;
    row.last_seq = Math.max(row.last_seq, seq);
    return row;
  }

  /** One row per session, with the times of its events so far (the rows are this object's own). */
  rows(): SessionRow[] {
    const rows: SessionRow[] = [];
    for (const { row, firstUs, lastUs } of this.bySession.values()) {
      row.started_at = clickhouseTime(firstUs);
      row.last_at = clickhouseTime(lastUs);
      rows.push(row);
    }
    return rows;
  }
}

function addCommand(row: SessionRow, command: number, decision: Decision): void {
  row.commands = Math.max(row.commands, command);
  if (decision === Decision.DECISION_ALLOW) row.allowed = 1;
  if (decision === Decision.DECISION_DENY) row.denied = 1;
  if (decision === Decision.DECISION_REVIEW) row.reviewed = 1;
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
    case "command":
      return addCommand(row, body.value.command, body.value.decision);
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
    last_at: EPOCH,
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

/** A session as search shows it. Times are ISO 8601 (UTC, microseconds). */
export interface SessionSummary {
  id: string;
  user: string;
  groups: string[];
  connection: string;
  connectionType: string;
  segment: string;
  relayId: string;
  hubId: string;
  clientAddress: string;
  target: string;
  params: Record<string, string>;
  startedAt: string;
  endedAt?: string;
  commands: number;
  denied: boolean;
  /** Some command went to review (and so through an approval). */
  reviewed: boolean;
  errors: number;
  endError?: string;
  lastSeq: number;
  running: boolean;
}

/**
 * One merged summary per session, for the sessions `idsSql` names (a subquery or a bound array).
 *
 * Reads merge the partial rows themselves, with the columns' own functions, rather than with
 * FINAL: given a list of ids, FINAL does not narrow the read by primary key (519 ms of CPU for 40
 * ids over 20 parts, against 44 ms for this GROUP BY). Filters, which read a few columns of every
 * session, use FINAL (storage/search.ts), where it is the faster of the two.
 */
export function sessionSummaries(idsSql: string): string {
  return `SELECT session_id,
      toString(toUnixTimestamp64Micro(min(started_at))) AS started_us,
      toString(toUnixTimestamp64Micro(max(ended_at))) AS ended_us,
      max(user) AS user, max(groups) AS groups, max(connection) AS connection,
      max(connection_type) AS connection_type, max(segment) AS segment, max(relay_id) AS relay_id,
      max(hub_id) AS hub_id, max(client_address) AS client_address, max(target) AS target,
      max(params) AS params, max(commands) AS commands, max(denied) AS denied, max(reviewed) AS reviewed,
      max(approvals) AS approvals, length(groupUniqArrayArray(error_seqs)) AS errors,
      max(end_error) AS end_error, max(last_seq) AS last_seq
    FROM sessions
    WHERE session_id IN ${idsSql}
    GROUP BY session_id`;
}

export interface SessionRead {
  session_id: string;
  started_us: string;
  ended_us: string;
  user: string;
  groups: string[];
  connection: string;
  connection_type: string;
  segment: string;
  relay_id: string;
  hub_id: string;
  client_address: string;
  target: string;
  params: string;
  commands: number;
  denied: number;
  reviewed: number;
  approvals: number;
  errors: number;
  end_error: string;
  last_seq: number | string;
}

export function toSummary(r: SessionRead): SessionSummary {
  const endedUs = BigInt(r.ended_us);
  const summary: SessionSummary = {
    id: r.session_id,
    user: r.user,
    groups: r.groups,
    connection: r.connection,
    connectionType: r.connection_type,
    segment: r.segment,
    relayId: r.relay_id,
    hubId: r.hub_id,
    clientAddress: r.client_address,
    target: r.target,
    params: r.params ? (JSON.parse(r.params) as Record<string, string>) : {},
    startedAt: isoTime(BigInt(r.started_us)),
    commands: Number(r.commands),
    denied: Number(r.denied) === 1,
    reviewed: Number(r.reviewed) === 1 || Number(r.approvals) === 1,
    errors: Number(r.errors),
    lastSeq: Number(r.last_seq),
    running: endedUs === 0n,
  };
  if (endedUs !== 0n) summary.endedAt = isoTime(endedUs);
  if (r.end_error) summary.endError = r.end_error;
  return summary;
}
