import { Decision, Stream, type Value } from "../../proto/gen/vigil/v1/recording.js";
import { typeName, type EventBody, type RecordingEvent } from "./chain.js";

/**
 * A recorded event as people and SIEMs read it: one flat JSON object with the session, seq, ISO
 * time and type, then the body's fields (decisions as allow/deny/review, sample rows as arrays,
 * NULL as null). This is what the API's event stream, `vigil replay` and `vigil export` show.
 */
export interface EventView {
  session: string;
  seq: number;
  time: string;
  /** Microseconds since the epoch: the exact recorded time, for playback timing. */
  timeUs: number;
  type: string;
  hash: string;
  signature?: string;
  [field: string]: unknown;
}

export function eventView(ev: RecordingEvent): EventView {
  const us = Number(ev.timeUs);
  const view: EventView = {
    session: ev.sessionId,
    seq: Number(ev.seq),
    time: new Date(Math.floor(us / 1000)).toISOString(),
    timeUs: us,
    type: ev.body ? typeName(ev.body.$case) : "unknown",
    ...(ev.body ? withoutEmpty(bodyFields(ev.body)) : {}),
    hash: ev.hash.toString("hex"),
  };
  if (ev.signature.length > 0) view.signature = ev.signature.toString("base64");
  return view;
}

const DECISION_NAMES: Record<number, string> = {
  [Decision.DECISION_ALLOW]: "allow",
  [Decision.DECISION_DENY]: "deny",
  [Decision.DECISION_REVIEW]: "review",
};

const STREAM_NAMES: Record<number, string> = {
  [Stream.STREAM_OUTPUT]: "output",
  [Stream.STREAM_STDERR]: "stderr",
  [Stream.STREAM_INPUT]: "input",
};

export function decisionName(d: Decision): string {
  return DECISION_NAMES[d] ?? "unknown";
}

/** Proto3 has no "absent" for strings and lists: empty ones are left out of the view. */
function withoutEmpty(fields: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(fields)) {
    if (v === "" || v === undefined || (Array.isArray(v) && v.length === 0)) delete fields[k];
  }
  return fields;
}

const value = (v: Value): string | null => v.text ?? null;

function bodyFields(body: EventBody): Record<string, unknown> {
  switch (body.$case) {
    case "sessionStart": {
      const { params, ...rest } = body.value;
      return { ...rest, params: Object.fromEntries(params.map((p) => [p.key, p.value])) };
    }
    case "params":
      return { params: Object.fromEntries(body.value.params.map((p) => [p.key, p.value])) };
    case "command": {
      const { decision, params, ...rest } = body.value;
      return { ...rest, decision: decisionName(decision), ...(params.length ? { params: params.map(value) } : {}) };
    }
    case "result": {
      const { rows, bytes, durationUs, sample, error, ...rest } = body.value;
      return {
        ...rest,
        rows: Number(rows),
        bytes: Number(bytes),
        durationMs: Number(durationUs) / 1000,
        ...(sample.length ? { sample: sample.map((r) => r.values.map(value)) } : {}),
        ...(error ? { error } : {}),
      };
    }
    case "output":
      return { ...body.value, stream: STREAM_NAMES[body.value.stream] ?? "output" };
    default:
      return { ...body.value };
  }
}
