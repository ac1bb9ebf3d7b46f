import type { KeyObject } from "node:crypto";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import type { SessionEnd } from "../../../proto/gen/vigil/v1/recording.js";
import { VigilError } from "../../../lib/errors.js";
import { EventChain, RecordingEvent, type EventBody } from "../../../lib/recording/chain.js";

export type { EventBody } from "../../../lib/recording/chain.js";

/**
 * Where a relay's recorded events go: JetStream (with a spool on disk while NATS is away), the
 * hub's store in the same process (`vigil up`), or files on the relay's disk.
 */
export interface EventSink {
  /** Resolves when a new session's events can be kept; rejects when they cannot (fail closed). */
  ready(sessionId: string): Promise<void>;
  /**
   * Queue one event. Never blocks the data path, never throws. `hashed` is what its chain hashed
   * (`encodeChained` turns it into the event's protobuf without encoding it again).
   */
  write(event: RecordingEvent, hashed?: Uint8Array): void;
  /** False once events can no longer be kept: engines then refuse commands. */
  ok(): boolean;
  /** Resolves when everything written so far for the session is stored (acked, spooled or on disk). */
  flush(sessionId: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Events of the session the sink had to drop, once it can keep events again (and then only once),
   * so the recorder can put the gap on record. Optional: sinks that never drop events leave it out.
   */
  takeLoss?(sessionId: string): EventLoss | undefined;
}

/** A run of a session's events that a sink could not keep. */
export interface EventLoss {
  events: number;
  firstSeq: bigint;
  lastSeq: bigint;
}

/** Receives one session's events. Calls never block the data path and never throw. */
export interface SessionRecording {
  /** Record one event; it gets the next seq, the time and its place in the hash chain. */
  record(body: EventBody): void;
  /** False once events can no longer be kept: engines then refuse commands (fail closed). */
  ok(): boolean;
  /** Record the signed session_end (with the count of commands) and wait until the sink holds every event. */
  end(end: Pick<SessionEnd, "error">): Promise<void>;
}

/**
 * Builds each session's hash chain and hands the events to a sink. The last event (session_end) is
 * signed with the relay's enrolled key, so the hub can prove later that nothing was changed.
 */
export class Recorder {
  constructor(
    private readonly sink: EventSink,
    private readonly key: KeyObject,
  ) {}

  /** Rejects when the session cannot be recorded: the session does not start. */
  async open(sessionId: string): Promise<SessionRecording> {
    await this.sink.ready(sessionId);
    const chain = new EventChain(sessionId);
    const sink = this.sink;
    let ended = false;
    let commands = 0;
    // A gap the sink reports goes on record before the next event: the chain says what is missing.
    const recordLoss = (): void => {
      const loss = sink.takeLoss?.(sessionId);
      if (!loss) return;
      const message = `${loss.events} recorded events (seq ${loss.firstSeq}-${loss.lastSeq}) were lost: recording storage was unavailable`;
      sink.write(chain.append({ $case: "error", value: { code: "recording_gap", message } }), chain.hashed);
    };
    return {
      ok: () => sink.ok(),
      record: (body) => {
        if (ended) return;
        if (body.$case === "command") commands++;
        recordLoss();
        sink.write(chain.append(body), chain.hashed);
      },
      end: async (end) => {
        if (ended) return;
        ended = true;
        recordLoss();
        sink.write(chain.seal({ $case: "sessionEnd", value: { ...end, commands } }, this.key), chain.hashed);
        await sink.flush(sessionId);
      },
    };
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

/** How long events wait to be written together: one write per session and burst, not one per event. */
const FLUSH_MS = 10;
/** Events held before a write even when FLUSH_MS has not passed (bounds memory in a burst). */
const FLUSH_EVENTS = 256;

/**
 * A relay with no NATS to ship to keeps each session's events on its own disk, as NDJSON (one
 * proto3-JSON RecordingEvent per line) in `<dir>/<session>.ndjson`. Events are gathered, turned into
 * lines and written in one go every few milliseconds: neither the JSON nor the disk is on the data path.
 */
export class FileSink implements EventSink {
  private readonly files = new Map<string, SessionFile>();
  /** Files with events waiting for the next timed write. */
  private readonly dirty = new Set<SessionFile>();
  private timer: NodeJS.Timeout | undefined;
  private failed: Error | undefined;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async ready(sessionId: string): Promise<void> {
    const out: WriteStream = createWriteStream(join(this.dir, `${sessionId}.ndjson`), { flags: "a", mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      out.once("ready", () => (out.off("error", reject), resolve()));
      out.once("error", (err) =>
        reject(new VigilError("recording_unavailable", `the session cannot be recorded: ${err.message}`)),
      );
    });
    const file: SessionFile = { out, events: [] };
    out.on("error", (err) => (this.failed ??= err));
    this.files.set(sessionId, file);
  }

  ok(): boolean {
    return !this.failed;
  }

  write(event: RecordingEvent): void {
    const file = this.files.get(event.sessionId);
    if (!file || this.failed) return;
    file.events.push(event);
    if (file.events.length >= FLUSH_EVENTS) {
      this.writeOut(file);
      return;
    }
    this.dirty.add(file);
    this.timer ??= setTimeout(() => this.writeDirty(), FLUSH_MS);
  }

  async flush(sessionId: string): Promise<void> {
    const file = this.files.get(sessionId);
    if (!file) return;
    this.files.delete(sessionId);
    this.writeOut(file);
    if (this.failed) return;
    await new Promise<void>((resolve) => file.out.end(() => resolve()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.keys()].map((id) => this.flush(id)));
  }

  /** One timer for every session: many sessions do not mean many timers. */
  private writeDirty(): void {
    this.timer = undefined;
    for (const file of this.dirty) this.writeOut(file);
  }

  private writeOut(file: SessionFile): void {
    this.dirty.delete(file);
    if (file.events.length === 0 || this.failed) return;
    let lines = "";
    for (const event of file.events) lines += JSON.stringify(RecordingEvent.toJSON(event)) + "\n";
    file.events = [];
    file.out.write(lines);
  }
}

interface SessionFile {
  out: WriteStream;
  events: RecordingEvent[];
}
