import type { JetStreamManager } from "@nats-io/jetstream";

/**
 * Where recordings travel through NATS. Relays publish each event (binary RecordingEvent) on
 * `vigil.rec.<segment>.<session_id>` with `Nats-Msg-Id: <session_id>:<seq>` so a re-sent event is
 * dropped by JetStream's duplicate window; ingest workers share one durable pull consumer.
 */
export const RECORDING_STREAM = "VIGIL_RECORDINGS";
export const RECORDING_SUBJECTS = "vigil.rec.>";
export const INGEST_CONSUMER = "vigil-ingest";
/** Messages ingest could not take, with the reason in the `Vigil-Reason` header. */
export const DEAD_LETTER_STREAM = "VIGIL_RECORDINGS_DEAD";
export const DEAD_LETTER_SUBJECT = "vigil.dead.rec";

/** How long JetStream remembers message ids: a re-send within it is not stored twice. */
const DUPLICATE_WINDOW_NS = 10 * 60 * 1e9;
/** Recordings stay in the stream this long after ingest, for a re-ingest after a store loss. */
const MAX_AGE_NS = 7 * 24 * 3600 * 1e9;

export function recordingSubject(segment: string, sessionId: string): string {
  return `vigil.rec.${subjectToken(segment)}.${subjectToken(sessionId)}`;
}

/** Every segment's subject for one session: what a live viewer subscribes to. */
export function sessionSubjects(sessionId: string): string {
  return `vigil.rec.*.${subjectToken(sessionId)}`;
}

export function messageId(sessionId: string, seq: bigint | number): string {
  return `${sessionId}:${seq}`;
}

/** A value as one subject token: NATS subject tokens may not hold dots, spaces or wildcards. */
export function subjectToken(s: string): string {
  return s.replace(/[.\s*>]/g, "_") || "_";
}

/** Create the recording and dead-letter streams if they are missing; safe to call from every process. */
export async function ensureRecordingStreams(jsm: JetStreamManager): Promise<void> {
  await ensureStream(jsm, RECORDING_STREAM, [RECORDING_SUBJECTS]);
  await ensureStream(jsm, DEAD_LETTER_STREAM, [DEAD_LETTER_SUBJECT]);
}

async function ensureStream(jsm: JetStreamManager, name: string, subjects: string[]): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
  }
  try {
    await jsm.streams.add({ name, subjects, duplicate_window: DUPLICATE_WINDOW_NS, max_age: MAX_AGE_NS });
  } catch (err) {
    // Another process created it between our look and our add.
    if (!/already in use|already exists/i.test((err as Error).message)) throw err;
  }
}
