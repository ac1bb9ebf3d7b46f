import { verifyChain, type VerifyResult } from "../lib/recording/chain.js";
import type { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import type { Executor } from "./executor.js";
import { migrate } from "./migrate.js";
import {
  clickhouseTime,
  EVENT_ROW_COLUMNS,
  isoTime,
  rowMatchesBody,
  rowToEvent,
  deriveColumns,
  type EventColumns,
  type StoredEventRow,
} from "./rows.js";
import {
  checkDecision,
  decodeCursor,
  encodeCursor,
  eventsOfSessions,
  pageLimit,
  parseTime,
  sessionConditions,
  TEXT_MATCH,
  whereClause,
  type PageOptions,
  type Params,
  type SessionFilter,
} from "./search.js";
import { eventBatch, type EventBatch } from "./event-batch.js";
import { sessionSummaries, toSummary, type SessionRead, type SessionSummary } from "./session-rows.js";

export type { Decision, PageOptions, SessionFilter } from "./search.js";
export type { SessionSummary } from "./session-rows.js";

export interface InsertOptions {
  /**
   * Whether some of the events may be stored already (the default: true), so that the store looks
   * them up first. False only when each event is delivered for the first time (JetStream's first
   * delivery of a message): see docs/recording-store.md, "Writing".
   */
  mayBeStored?: boolean;
}

/** A stored event, with the time of its row as ISO 8601 (microseconds). */
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

/** Commands are filtered on their own time, decision and text, and on their session's fields. */
export type CommandFilter = Omit<SessionFilter, "hasApproval"> & PageOptions;

export interface StorageStats {
  tables: { table: string; rows: number; compressedBytes: number; uncompressedBytes: number; indexBytes: number }[];
}

export interface RecordingStoreOptions {
  /** Keep recordings this many days; 0 keeps them forever. */
  retentionDays: number;
}

/**
 * The columns of the event itself, under the names of `EventRow`. Search and export read only these
 * and derive the rest from the body: each column read for a page of scattered rows costs a granule
 * of that column per row, so fewer columns is faster.
 */
const EVENT_COLUMNS = `session_id, seq, toString(toUnixTimestamp64Micro(time)) AS time_us, version, body,
  hex(hash) AS hash_hex, hex(signature) AS signature_hex`;

/** The search columns, which verification compares with the body. */
const DERIVED_COLUMNS = "type, command, decision, rule, kinds, text";

/**
 * Settings of the fleet-wide reads. ClickHouse's top-k filtering (new in 25.x) replaces the
 * PREWHERE of an ORDER BY … LIMIT query with a filter on the sort key, which drops the text index
 * answering `hasAllTokens` and reads every body in range instead: 2–3× the CPU in our measurements.
 */
const SEARCH_SETTINGS = "SETTINGS use_top_k_dynamic_filtering = 0";

/** How many events verification and export read per query. */
const READ_PAGE = 10_000;

const TIME = "DateTime64(6, 'UTC')";

/**
 * Recorded sessions in ClickHouse: ingest inserts events; the hub searches sessions and commands
 * across the fleet, replays and verifies one session, and exports ranges to a SIEM.
 * Schema and reasons: storage/migrations/ and docs/recording-store.md.
 *
 * The store does not own its executor: whoever opened it closes it.
 */
export class RecordingStore {
  private constructor(private readonly db: Executor) {}

  /** Bring the schema up to date (and the retention), then serve from `executor`. */
  static async open(executor: Executor, options: RecordingStoreOptions): Promise<RecordingStore> {
    await migrate(executor, { retentionDays: options.retentionDays });
    return new RecordingStore(executor);
  }

  /** Serve from `executor` over a schema another handle on the same store has brought up to date. */
  static attach(executor: Executor): RecordingStore {
    return new RecordingStore(executor);
  }

  /**
   * Store a batch of events. Events already stored (a batch delivered again after a crash) are
   * skipped, found with one primary-key query; the table engine collapses any duplicate that races
   * past that check, and reads never show one.
   *
   * The batch's session summaries are written first, and whole every time: their merge functions
   * make a repeat harmless, a crash between the two inserts is repaired by the redelivery, and a
   * reader never sees events outside the time span their session's summary gives for replay.
   */
  async insertEvents(
    events: readonly RecordingEvent[],
    options: InsertOptions = {},
  ): Promise<{ inserted: number; skipped: number }> {
    return this.insertBatch(eventBatch(events), options);
  }

  /** `insertEvents` of a batch built beforehand (ingest builds the next batch during an insert). */
  async insertBatch(batch: EventBatch, options: InsertOptions = {}): Promise<{ inserted: number; skipped: number }> {
    if (batch.size === 0) return { inserted: 0, skipped: 0 };
    const stored = options.mayBeStored === false ? undefined : await this.storedKeys(batch);
    const { payload, events } = batch.rows(stored?.size ? (key) => stored.has(key) : undefined);
    await this.db.insert("sessions", batch.sessionRows());
    await this.db.insertRowBinary("events", EVENT_ROW_COLUMNS, payload);
    return { inserted: events, skipped: batch.size - events };
  }

  /**
   * `session\0seq` of the batch's events that are already stored. One query by primary key: the
   * batch's time span (a stored copy of an event has the event's own time), its sessions, and for
   * each session only the seqs between the lowest and highest the batch holds.
   */
  private async storedKeys(batch: EventBatch): Promise<Set<string>> {
    const sessions = batch.sessionRanges();
    const rows = await this.db.query<{ session_id: string; seq: number | string }>(
      `SELECT session_id, seq FROM events
       WHERE time >= {first:${TIME}} AND time <= {last:${TIME}}
         AND session_id IN {ids:Array(String)}
         AND seq BETWEEN {lo:Array(UInt64)}[indexOf({ids:Array(String)}, session_id)]
                     AND {hi:Array(UInt64)}[indexOf({ids:Array(String)}, session_id)]`,
      {
        first: clickhouseTime(batch.firstUs),
        last: clickhouseTime(batch.lastUs),
        ids: sessions.map((s) => s.id),
        lo: sessions.map((s) => s.lo),
        hi: sessions.map((s) => s.hi),
      },
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
      where.push(`(started_at, session_id) ${dir === "DESC" ? "<" : ">"} ({after_time:${TIME}}, {after_id:String})`);
    }
    // The page's ids come from the filter (over FINAL), their summaries from one keyed read.
    const order = `ORDER BY started_at ${dir}, session_id ${dir}`;
    const rows = await this.db.query<SessionRead>(
      `${sessionSummaries(`(SELECT session_id FROM sessions FINAL ${whereClause(where)} ${order} LIMIT {limit:UInt32})`)}
       ORDER BY min(started_at) ${dir}, session_id ${dir}`,
      params,
    );
    const page = rows.slice(0, limit).map(toSummary);
    const last = rows.length > limit ? rows[limit - 1] : undefined;
    return last ? { sessions: page, next: encodeCursor([last.started_us, last.session_id]) } : { sessions: page };
  }

  async getSession(id: string): Promise<SessionSummary | undefined> {
    const [row] = await this.db.query<SessionRead>(sessionSummaries("({id:String})"), { id });
    return row && toSummary(row);
  }

  /** One session's events in seq order, from `afterSeq + 1` (all by default). */
  async sessionEvents(id: string, options: { afterSeq?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    return (await this.sessionRows<EventColumns>(id, options, EVENT_COLUMNS)).map((row) => ({
      ...rowToEvent(row),
      time: isoTime(BigInt(row.time_us)),
    }));
  }

  /** One session's rows in seq order: `columns` are the event's own, plus the derived ones to verify them. */
  private async sessionRows<T extends EventColumns>(
    id: string,
    options: { afterSeq?: number; limit?: number },
    columns: string,
  ): Promise<T[]> {
    const params: Params = { id, from: options.afterSeq === undefined ? 0 : options.afterSeq + 1 };
    const where = ["session_id = {id:String}", "seq >= {from:UInt64}"];
    // The events table is ordered by hour first: the session's span says which hours to read.
    // Without a summary (events written some other way), every hour is searched: slower, complete.
    const [span] = await this.db.query<{ n: number | string; first: string; last: string }>(
      `SELECT count() AS n, toString(min(started_at)) AS first, toString(max(last_at)) AS last
       FROM sessions WHERE session_id = {id:String}`,
      { id },
    );
    if (span && Number(span.n) > 0) {
      Object.assign(params, { first: span.first, last: span.last });
      where.push(`time >= {first:${TIME}}`, `time <= {last:${TIME}}`);
    }
    let limit = "";
    if (options.limit !== undefined) {
      params.limit = options.limit;
      limit = "LIMIT {limit:UInt32}";
    }
    return this.db.query<T>(
      `SELECT ${columns} FROM events
       ${whereClause(where)}
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
      const rows = await this.sessionRows<StoredEventRow>(
        id,
        { afterSeq: after, limit: READ_PAGE },
        `${EVENT_COLUMNS}, ${DERIVED_COLUMNS}`,
      );
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
      where.push(`time >= {from:${TIME}}`);
    }
    if (filter.to !== undefined) {
      params.to = clickhouseTime(parseTime(filter.to, "to"));
      where.push(`time <= {to:${TIME}}`);
    }
    if (filter.decision) {
      params.decision = filter.decision;
      where.push("decision = {decision:String}");
    }
    if (filter.q?.trim()) {
      params.q = filter.q.trim();
      where.push(TEXT_MATCH);
    }
    // Who and where live in the sessions table; the words and decision apply to the command. The
    // time range applies to both: a command in range belongs to a session overlapping it.
    const { user, group, connection, segment, type, from, to } = filter;
    const sessionWhere =
      user || group || connection || segment || type
        ? sessionConditions({ user, group, connection, segment, type, from, to }, params)
        : [];
    if (sessionWhere.length) where.push(...eventsOfSessions(whereClause(sessionWhere)));
    const dir = filter.sort === "asc" ? "ASC" : "DESC";
    if (filter.cursor) {
      const [us, id, seq] = decodeCursor(filter.cursor, ["string", "string", "number"]);
      Object.assign(params, { after_time: clickhouseTime(BigInt(us!)), after_id: id, after_seq: seq });
      const [cmp, bound] = dir === "DESC" ? ["<", "<="] : [">", ">="];
      where.push(
        `time ${bound} {after_time:${TIME}}`, // the tuple below is exact; this lets the primary key prune
        `(time, session_id, seq) ${cmp} ({after_time:${TIME}}, {after_id:String}, {after_seq:UInt64})`,
      );
    }
    // No LIMIT BY here: it keeps ClickHouse from reading in order and from reading the bodies of the
    // page's rows only. The rare duplicate (adjacent in this order) is dropped below instead.
    const rows = await this.db.query<EventColumns>(
      `SELECT ${EVENT_COLUMNS} FROM events
       ${whereClause(where)}
       ORDER BY ${timeOrder(dir)}
       LIMIT {limit:UInt32}
       ${SEARCH_SETTINGS}`,
      params,
    );
    const page = dropRepeats(rows.slice(0, limit));
    const sessions = await this.sessionsById([...new Set(page.map((r) => r.session_id))]);
    const events = page.map((row): CommandHit => {
      const s = sessions.get(row.session_id);
      const event = rowToEvent(row);
      const derived = deriveColumns(event.body!);
      return {
        sessionId: row.session_id,
        seq: Number(row.seq),
        time: isoTime(BigInt(row.time_us)),
        command: derived.command,
        text: event.body?.$case === "command" ? event.body.value.text : "",
        decision: derived.decision,
        rule: derived.rule,
        kinds: derived.kinds,
        user: s?.user ?? "",
        connection: s?.connection ?? "",
        connectionType: s?.connectionType ?? "",
        segment: s?.segment ?? "",
        event,
      };
    });
    const last = rows.length > limit ? rows[limit - 1] : undefined;
    return last ? { events, next: encodeCursor([last.time_us, last.session_id, Number(last.seq)]) } : { events };
  }

  private async sessionsById(ids: string[]): Promise<Map<string, SessionSummary>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<SessionRead>(sessionSummaries("{ids:Array(String)}"), { ids });
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
    const limit = range.pageSize ?? READ_PAGE;
    const params: Params = {
      from: clickhouseTime(parseTime(range.from, "from")),
      to: clickhouseTime(parseTime(range.to, "to")),
      limit,
    };
    let after = "";
    let previous: EventColumns | undefined;
    for (;;) {
      const rows = await this.db.query<EventColumns>(
        `SELECT ${EVENT_COLUMNS} FROM events
         WHERE time >= {from:${TIME}} AND time < {to:${TIME}} ${after}
         ORDER BY ${timeOrder("ASC")}
         LIMIT {limit:UInt32}
         ${SEARCH_SETTINGS}`,
        params,
      );
      for (const row of rows) {
        if (previous && sameEvent(previous, row)) continue;
        previous = row;
        yield { ...rowToEvent(row), time: isoTime(BigInt(row.time_us)) };
      }
      if (rows.length < limit) return;
      const last = rows[rows.length - 1]!;
      Object.assign(params, {
        after_time: clickhouseTime(BigInt(last.time_us)),
        after_id: last.session_id,
        after_seq: Number(last.seq),
      });
      after = `AND time >= {after_time:${TIME}}
        AND (time, session_id, seq) > ({after_time:${TIME}}, {after_id:String}, {after_seq:UInt64})`;
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

/**
 * (time, session, seq) order, spelled with the table's leading key first. Sorting by the hour
 * before the time changes nothing in the order, but lets ClickHouse read the table in key order and
 * stop once the page is full: 570 -> 100 ms of CPU for the newest commands of the whole fleet.
 */
function timeOrder(dir: "ASC" | "DESC"): string {
  return `toStartOfHour(time) ${dir}, time ${dir}, session_id ${dir}, seq ${dir}`;
}

function sameEvent(a: EventColumns, b: EventColumns): boolean {
  return a.session_id === b.session_id && String(a.seq) === String(b.seq);
}

/** Rows sorted by (time, session, seq) without the repeats of a duplicate not merged away yet. */
function dropRepeats<T extends EventColumns>(rows: T[]): T[] {
  return rows.filter((row, i) => i === 0 || !sameEvent(rows[i - 1]!, row));
}
