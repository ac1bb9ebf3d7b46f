import { VigilError } from "../lib/errors.js";
import { clickhouseTime } from "./rows.js";

/**
 * Search filters turned into WHERE conditions. Every value goes into `params` and is named in the
 * SQL as a `{name:Type}` placeholder; nothing a caller sends is ever spliced into SQL text.
 */

export type Decision = "allow" | "deny" | "review";

/** What sessions may be filtered on; every field is optional and they all must hold. */
export interface SessionFilter {
  user?: string;
  /** Sessions whose user was in this group. */
  group?: string;
  connection?: string;
  segment?: string;
  /** Connection type: postgres, ssh, http, kubernetes, tcp. */
  type?: string;
  /** Sessions overlapping [from, to]: ISO 8601 strings or Dates. */
  from?: string | Date;
  to?: string | Date;
  /** Words that must all appear (case-insensitive, whole words) in one command text of the session. */
  q?: string;
  /** Sessions with at least one command so decided. */
  decision?: Decision;
  /** Sessions with (true) or without (false) an approval step. */
  hasApproval?: boolean;
}

export interface PageOptions {
  /** Newest first (desc, the default) or oldest first. */
  sort?: "asc" | "desc";
  /** 50 by default, at most 500. */
  limit?: number;
  /** The `next` of the previous page. */
  cursor?: string;
}

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

export type Params = Record<string, unknown>;

/** DateTime64 placeholder type of every time parameter. */
const TIME = "DateTime64(6, 'UTC')";

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new VigilError("bad_request", `limit must be a positive integer`);
  return Math.min(limit, MAX_LIMIT);
}

/** A time filter as microseconds; accepts Dates and ISO 8601 strings. */
export function parseTime(value: string | Date, name: string): bigint {
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  if (!Number.isFinite(ms)) throw new VigilError("bad_request", `${name} is not a date: ${JSON.stringify(value)}`);
  let us = BigInt(ms) * 1000n;
  // Date.parse keeps milliseconds only; keep the microseconds an ISO string may carry.
  const micro = typeof value === "string" ? /\.\d{3}(\d{1,3})/.exec(value) : null;
  if (micro) us += BigInt(micro[1]!.padEnd(3, "0"));
  return us;
}

/** Conditions on the `sessions` table (read with FINAL) for a filter. */
export function sessionConditions(filter: SessionFilter, params: Params): string[] {
  const where: string[] = [];
  const equal = (column: string, name: string, value: string | undefined) => {
    if (value === undefined || value === "") return;
    params[name] = value;
    where.push(`${column} = {${name}:String}`);
  };
  equal("user", "user", filter.user);
  equal("connection", "connection", filter.connection);
  equal("segment", "segment", filter.segment);
  equal("connection_type", "type", filter.type);
  if (filter.group) {
    params.group = filter.group;
    where.push("has(groups, {group:String})");
  }
  if (filter.from !== undefined) {
    params.from = clickhouseTime(parseTime(filter.from, "from"));
    // A running session (ended_at still 0) overlaps every range after its start.
    where.push(`(ended_at >= {from:${TIME}} OR ended_at = toDateTime64(0, 6, 'UTC'))`);
  }
  if (filter.to !== undefined) {
    params.to = clickhouseTime(parseTime(filter.to, "to"));
    where.push(`started_at <= {to:${TIME}}`);
  }
  if (filter.decision !== undefined) where.push(`${decisionFlag(filter.decision)} = 1`);
  if (filter.hasApproval !== undefined) where.push(filter.hasApproval ? "approvals = 1" : "approvals = 0");
  const q = filter.q?.trim();
  if (q) {
    params.q = q;
    // With other filters, look for the words only among the events of the sessions they select.
    const scope = where.length ? eventsOfSessions(whereClause(where)) : [];
    where.push(`session_id IN (SELECT session_id FROM events ${whereClause([TEXT_MATCH, ...scope])})`);
  }
  return where;
}

/**
 * Conditions on `events` for the events of the sessions `sessionWhere` selects: their ids, and the
 * span of time they cover, so that the events table's primary key (hour first) reads only those
 * hours. The three subqueries are scalar or sets, evaluated before the index is consulted.
 */
export function eventsOfSessions(sessionWhere: string): string[] {
  return [
    `session_id IN (SELECT session_id FROM sessions FINAL ${sessionWhere})`,
    `time >= (SELECT min(started_at) FROM sessions FINAL ${sessionWhere})`,
    `time <= (SELECT max(last_at) FROM sessions FINAL ${sessionWhere})`,
  ];
}

/** Command texts holding every word of `{q}`; answered from the text index on lowerUTF8(text). */
export const TEXT_MATCH = "hasAllTokens(lowerUTF8(text), lowerUTF8({q:String}))";

function decisionFlag(decision: Decision): string {
  switch (decision) {
    case "allow":
      return "allowed";
    case "deny":
      return "denied";
    case "review":
      return "reviewed";
    default:
      throw new VigilError("bad_request", `decision must be allow, deny or review, not ${JSON.stringify(decision)}`);
  }
}

export function checkDecision(decision: string | undefined): void {
  if (decision !== undefined) decisionFlag(decision as Decision);
}

/**
 * Opaque paging cursors: the sort key of the last row returned, so the next page starts right after
 * it whatever was inserted meanwhile. Base64url JSON; a cursor that does not decode is a bad request.
 */
export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

export function decodeCursor(cursor: string, shape: readonly ("string" | "number")[]): (string | number)[] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || key.length !== shape.length || key.some((v, i) => typeof v !== shape[i])) {
    throw new VigilError("bad_request", "cursor is not one this search returned");
  }
  return key as (string | number)[];
}

export function whereClause(conditions: readonly string[]): string {
  return conditions.length ? `WHERE ${conditions.join("\n  AND ")}` : "";
}
