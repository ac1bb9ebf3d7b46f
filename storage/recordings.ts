import { verifyChain, type VerifyResult } from "../lib/recording/chain.js";
import type { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import type { Executor } from "./executor.js";
import { migrate } from "./migrate.js";
import {
  clickhouseTime,
  eventToRow,
  isoTime,
  rowMatchesBody,
  rowToEvent,
  type EventRow,
  type StoredEventRow,
} from "./rows.js";
import {
  checkDecision,
  decodeCursor,
  encodeCursor,
  pageLimit,
  parseTime,
  sessionConditions,
  TEXT_MATCH,
  whereClause,
  type PageOptions,
  type Params,
  type SessionFilter,
} from "./search.js";
import { sessionRows } from "./session-rows.js";

export type { Decision, PageOptions, SessionFilter } from "./search.js";

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
  reviewed: boolean;
  errors: number;
  endError?: string;
  lastSeq: number;
  running: boolean;
}

/** A stored event, with the time of its row as ISO 8601. */
export type StoredEvent = RecordingEvent & { time: string };

/** One command found by a fleet-wide search, with who ran it where. */
export interface CommandHit {
  sessionId: string;
  seq: number;
  time: string;
  command: number;
  text: string;
  decision: string;
  rule: string;
  kinds: string[];
  user: string;
  connection: string;
  connectionType: string;
  segment: string;
  /** The whole command event (tables, parameters, reason). */
  event: RecordingEvent;
}

export type CommandFilter = Omit<SessionFilter, "hasApproval"> & PageOptions;

export interface StorageStats {
  tables: { table: string; rows: number; compressedBytes: number; uncompressedBytes: number; indexBytes: number }[];
}

export interface RecordingStoreOptions {
  /** Keep recordings this many days; 0 keeps them forever. */
  retentionDays: number;
}

/** Columns of an events row, in the names of `EventRow`. */
const EVENT_COLUMNS = `session_id, seq, toString(toUnixTimestamp64Micro(time)) AS time_us, version,
  type, command, text, decision, rule, kinds, body, hex(hash) AS hash_hex, hex(signature) AS signature_hex`;

const SESSION_COLUMNS = `session_id, toString(toUnixTimestamp64Micro(started_at)) AS started_us,
  toString(toUnixTimestamp64Micro(ended_at)) AS ended_us, user, groups, connection, connection_type, segment,
  relay_id, hub_id, client_address, target, params, commands, denied, reviewed, approvals,
  length(error_seqs) AS errors, end_error, last_seq`;

interface SessionRead {
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

/** How many events verification and export read per query. */
const READ_PAGE = 10_000;

/**
 * Recorded sessions in ClickHouse: ingest inserts events; the hub searches sessions and commands
 * across the fleet, replays and verifies one session, and exports ranges to a SIEM.
 * Schema and reasons: storage/migrations/ and docs/recording-store.md.
 */
export class RecordingStore {
  private constructor(private readonly db: Executor) {}

  /** Bring the schema up to date (and the retention), then serve from `executor`. */
  static async open(executor: Executor, options: RecordingStoreOptions): Promise<RecordingStore> {
    await migrate(executor, { retentionDays: options.retentionDays });
    return new RecordingStore(executor);
  }

  /**
   * Store a batch of events. Events already stored (a batch delivered again after a crash) are
   * skipped, found with one primary-key query; the table engine collapses any duplicate that races
   * past that check, and reads never show one. The batch's session summaries are written whole
   * every time: their merge functions make a repeat harmless, and a crash between the two inserts
   * is repaired by the redelivery.
   */
  async insertEvents(events: readonly RecordingEvent[]): Promise<{ inserted: number; skipped: number }> {
    if (events.length === 0) return { inserted: 0, skipped: 0 };
    const stored = await this.storedKeys(events);
    const seen = new Set<string>();
    const fresh: EventRow[] = [];
    for (const ev of events) {
      const key = `${ev.sessionId}\0${ev.seq}`;
      if (stored.has(key) || seen.has(key)) continue;
      seen.add(key);
      fresh.push(eventToRow(ev));
    }
    await this.db.insert("events", fresh as unknown as Record<string, unknown>[]);
    await this.db.insert("sessions", sessionRows(events) as unknown as Record<string, unknown>[]);
    return { inserted: fresh.length, skipped: events.length - fresh.length };
  }

  /**
   * `session\0seq` of the batch's events that are already stored. One query: the batch's sessions
   * (a primary-key lookup), each only between the lowest and highest seq the batch holds for it,
   * so a long session's earlier events are not read back every batch.
   */
  private async storedKeys(events: readonly RecordingEvent[]): Promise<Set<string>> {
    const ranges = new Map<string, { lo: number; hi: number }>();
    for (const ev of events) {
      const seq = Number(ev.seq);
      const r = ranges.get(ev.sessionId);
      if (!r) ranges.set(ev.sessionId, { lo: seq, hi: seq });
      else if (seq < r.lo) r.lo = seq;
      else if (seq > r.hi) r.hi = seq;
    }
    const ids = [...ranges.keys()];
    const rows = await this.db.query<{ session_id: string; seq: number | string }>(
      `SELECT session_id, seq FROM events
       WHERE session_id IN {ids:Array(String)}
         AND seq BETWEEN {lo:Array(UInt64)}[indexOf({ids:Array(String)}, session_id)]
                     AND {hi:Array(UInt64)}[indexOf({ids:Array(String)}, session_id)]`,
      { ids, lo: ids.map((id) => ranges.get(id)!.lo), hi: ids.map((id) => ranges.get(id)!.hi) },
    );
    return new Set(rows.map((r) => `${r.session_id}\0${r.seq}`));
  }

  async searchSessions(
    filter: SessionFilter & PageOptions = {},
  ): Promise<{ sessions: SessionSummary[]; next?: string }> {
    checkDecision(filter.decision);
    const limit = pageLimit(filter.limit);
    const params: Params = { limit: limit + 1 };
    const where = sessionConditions(filter, params);
    const dir = filter.sort === "asc" ? "ASC" : "DESC";
    if (filter.cursor) {
      const [us, id] = decodeCursor(filter.cursor, ["string", "string"]);
      params.after_time = clickhouseTime(BigInt(us!));
      params.after_id = id;
      where.push(
        `(started_at, session_id) ${dir === "DESC" ? "<" : ">"} ({after_time:DateTime64(6, 'UTC')}, {after_id:String})`,
      );
    }
    const rows = await this.db.query<SessionRead>(
      `SELECT ${SESSION_COLUMNS} FROM sessions FINAL
       ${whereClause(where)}
       ORDER BY started_at ${dir}, session_id ${dir}
       LIMIT {limit:UInt32}`,
      params,
    );
    const page = rows.slice(0, limit).map(toSummary);
    const last = rows.length > limit ? rows[limit - 1] : undefined;
    return last ? { sessions: page, next: encodeCursor([last.started_us, last.session_id]) } : { sessions: page };
  }

  async getSession(id: string): Promise<SessionSummary | undefined> {
    const [row] = await this.db.query<SessionRead>(
      `SELECT ${SESSION_COLUMNS} FROM sessions FINAL WHERE session_id = {id:String}`,
      { id },
    );
    return row && toSummary(row);
  }

  /** One session's events in seq order, from `afterSeq + 1` (all by default). */
  async sessionEvents(id: string, options: { afterSeq?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return (await this.sessionRows(id, options)).map((row) => ({
      ...rowToEvent(row),
      time: isoTime(BigInt(row.time_us)),
    }));
  }

  private sessionRows(id: string, options: { afterSeq?: number; limit?: number }): Promise<StoredEventRow[]> {
    const params: Params = { id, from: options.afterSeq === undefined ? 0 : options.afterSeq + 1 };
    let limit = "";
    if (options.limit !== undefined) {
      params.limit = options.limit;
      limit = "LIMIT {limit:UInt32}";
    }
    return this.db.query<StoredEventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
       WHERE session_id = {id:String} AND seq >= {from:UInt64}
       ORDER BY seq
       LIMIT 1 BY seq
       ${limit}`,
      params,
    );
  }

  /**
   * Check a session's recording: its hash chain and the relay's signature (`relayKey`, the raw
   * Ed25519 key the hub pinned for its relay), and that every derived search column still matches
   * its event's body. Reads the session in pages, however long it is.
   */
  async verifySession(id: string, relayKey: Uint8Array | undefined): Promise<VerifyResult> {
    const events: RecordingEvent[] = [];
    for (let after: number | undefined; ;) {
      const rows = await this.sessionRows(id, { afterSeq: after, limit: READ_PAGE });
      for (const row of rows) {
        const check = rowMatchesBody(row);
        if (!check.ok) return { ok: false, seq: Number(row.seq), reason: check.reason, events: events.length };
        events.push(rowToEvent(row));
      }
      if (rows.length < READ_PAGE) break;
      after = Number(rows[rows.length - 1]!.seq);
    }
    return verifyChain(events, relayKey);
  }

  /** Commands across the fleet, newest first by default; each with its session's user and connection. */
  async searchEvents(filter: CommandFilter = {}): Promise<{ events: CommandHit[]; next?: string }> {
    checkDecision(filter.decision);
    const limit = pageLimit(filter.limit);
    const params: Params = { limit: limit + 1 };
    const where = ["type = 'command'"];
    if (filter.from !== undefined) {
      params.from = clickhouseTime(parseTime(filter.from, "from"));
      where.push("time >= {from:DateTime64(6, 'UTC')}");
    }
    if (filter.to !== undefined) {
      params.to = clickhouseTime(parseTime(filter.to, "to"));
      where.push("time <= {to:DateTime64(6, 'UTC')}");
    }
    if (filter.decision) {
      params.decision = filter.decision;
      where.push("decision = {decision:String}");
    }
    if (filter.q?.trim()) {
      params.q = filter.q.trim();
      where.push(TEXT_MATCH);
    }
    // Who and where live in the sessions table; the time range and text stay on the events.
    const { from: _from, to: _to, q: _q, decision: _d, ...sessionFilter } = filter;
    const sessionWhere = sessionConditions(sessionFilter, params);
    if (sessionWhere.length) {
      where.push(`session_id IN (SELECT session_id FROM sessions FINAL ${whereClause(sessionWhere)})`);
    }
    const dir = filter.sort === "asc" ? "ASC" : "DESC";
    if (filter.cursor) {
      const [us, id, seq] = decodeCursor(filter.cursor, ["string", "string", "number"]);
      params.after_time = clickhouseTime(BigInt(us!));
      params.after_id = id;
      params.after_seq = seq;
      where.push(
        `(time, session_id, seq) ${dir === "DESC" ? "<" : ">"} ({after_time:DateTime64(6, 'UTC')}, {after_id:String}, {after_seq:UInt64})`,
      );
    }
    const rows = await this.db.query<StoredEventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events
       ${whereClause(where)}
       ORDER BY time ${dir}, session_id ${dir}, seq ${dir}
       LIMIT 1 BY session_id, seq
       LIMIT {limit:UInt32}`,
      params,
    );
    const page = rows.slice(0, limit);
    const sessions = await this.sessionsById([...new Set(page.map((r) => r.session_id))]);
    const events = page.map((row): CommandHit => {
      const s = sessions.get(row.session_id);
      return {
        sessionId: row.session_id,
        seq: Number(row.seq),
        time: isoTime(BigInt(row.time_us)),
        command: Number(row.command),
        text: row.text,
        decision: row.decision,
        rule: row.rule,
        kinds: row.kinds,
        user: s?.user ?? "",
        connection: s?.connection ?? "",
        connectionType: s?.connectionType ?? "",
        segment: s?.segment ?? "",
        event: rowToEvent(row),
      };
    });
    const last = rows.length > limit ? rows[limit - 1] : undefined;
    return last ? { events, next: encodeCursor([last.time_us, last.session_id, Number(last.seq)]) } : { events };
  }

  private async sessionsById(ids: string[]): Promise<Map<string, SessionSummary>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<SessionRead>(
      `SELECT ${SESSION_COLUMNS} FROM sessions FINAL WHERE session_id IN {ids:Array(String)}`,
      { ids },
    );
    return new Map(rows.map((r) => [r.session_id, toSummary(r)]));
  }

  /**
   * Every event recorded in [from, to), in (time, session, seq) order, a page at a time: a SIEM
   * export of millions of events never holds more than one page.
   */
  async *exportEvents(range: {
    from: string | Date;
    to: string | Date;
    pageSize?: number;
  }): AsyncIterable<StoredEvent> {
    const params: Params = {
      from: clickhouseTime(parseTime(range.from, "from")),
      to: clickhouseTime(parseTime(range.to, "to")),
      limit: range.pageSize ?? READ_PAGE,
    };
    let after = "";
    for (;;) {
      const rows = await this.db.query<StoredEventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events
         WHERE time >= {from:DateTime64(6, 'UTC')} AND time < {to:DateTime64(6, 'UTC')} ${after}
         ORDER BY time, session_id, seq
         LIMIT 1 BY session_id, seq
         LIMIT {limit:UInt32}`,
        params,
      );
      for (const row of rows) yield { ...rowToEvent(row), time: isoTime(BigInt(row.time_us)) };
      if (rows.length < Number(params.limit)) return;
      const last = rows[rows.length - 1]!;
      params.after_time = clickhouseTime(BigInt(last.time_us));
      params.after_id = last.session_id;
      params.after_seq = Number(last.seq);
      after = `AND (time, session_id, seq) > ({after_time:DateTime64(6, 'UTC')}, {after_id:String}, {after_seq:UInt64})`;
    }
  }

  /** Rows and bytes on disk per table (active parts), compressed and not. */
  async storageStats(): Promise<StorageStats> {
    const rows = await this.db.query<{
      table: string;
      rows: string;
      compressed: string;
      uncompressed: string;
      index: string;
    }>(
      `SELECT table, toString(sum(rows)) AS rows,
              toString(sum(data_compressed_bytes)) AS compressed,
              toString(sum(data_uncompressed_bytes)) AS uncompressed,
              toString(sum(secondary_indices_compressed_bytes) + sum(primary_key_bytes_in_memory)) AS index
       FROM system.parts
       WHERE database = currentDatabase() AND active AND table IN ('events', 'sessions')
       GROUP BY table ORDER BY table`,
    );
    return {
      tables: rows.map((r) => ({
        table: r.table,
        rows: Number(r.rows),
        compressedBytes: Number(r.compressed),
        uncompressedBytes: Number(r.uncompressed),
        indexBytes: Number(r.index),
      })),
    };
  }
}

function toSummary(r: SessionRead): SessionSummary {
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
