import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import { VigilError } from "../../../lib/errors.js";

/**
 * What protocol engines tell the recording about a session, in order. Values are already masked
 * for the record by the engine (record masks), so a sink never sees what policy hides.
 */
export type RecordingEvent =
  | {
      type: "session_start";
      connection: string;
      connectionType: string;
      user: string;
      groups: string[];
      clientAddress: string;
      params: Record<string, string>;
    }
  | {
      type: "command";
      /** Per-session sequence of the command, shared by its decision, approval and result events. */
      command: number;
      text: string;
      /** Statement kinds and tables, as the parser saw them. */
      kinds: string[];
      tablesRead: string[];
      tablesWritten: string[];
      /** Parameters of an extended-protocol execution, masked; binary ones as "<binary N bytes>". */
      params?: (string | null)[];
      decision: "allow" | "deny" | "review";
      rule?: string;
      reason?: string;
    }
  | {
      type: "approval";
      command: number;
      approvalId: string;
      status: "pending" | "approved" | "denied" | "expired" | "error";
      decisions?: { by: string; verdict: string; reason: string; at: string }[];
      message?: string;
    }
  | {
      type: "result";
      command: number;
      /** Command tag (e.g. "SELECT 3", "DELETE 0"), or absent when the statement failed. */
      tag?: string;
      rows: number;
      /** SHA-256 (hex) over the DataRow bodies as the target sent them: a replay proves identical results. */
      digest?: string;
      /** The first rows, masked by the record masks. */
      sample?: (string | null)[][];
      columns?: string[];
      error?: { code: string; message: string };
      durationMs: number;
    }
  | { type: "session_end"; error?: string };

/** Receives one session's events. Calls never block the data path and never throw. */
export interface SessionRecording {
  record(event: RecordingEvent): void;
  /** False once events can no longer be kept: engines then refuse commands (fail closed). */
  ok(): boolean;
  end(): Promise<void>;
}

export interface Recorder {
  /** Rejects when the session cannot be recorded: the session does not start. */
  open(sessionId: string): Promise<SessionRecording>;
}

/** How long events wait to be written together: one write per burst, not one per event. */
const FLUSH_MS = 5;
const FLUSH_BYTES = 64 * 1024;

/**
 * NDJSON per session under a directory: `<dir>/<session>.ndjson`, one event per line with its
 * sequence number and time (ms since the epoch). Lines are gathered and written in one go every few
 * milliseconds; nothing on the data path waits for the disk.
 */
export class FileRecorder implements Recorder {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async open(sessionId: string): Promise<SessionRecording> {
    const out: WriteStream = createWriteStream(join(this.dir, `${sessionId}.ndjson`), { flags: "a", mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      out.once("ready", () => (out.off("error", reject), resolve()));
      out.once("error", (err) =>
        reject(new VigilError("recording_unavailable", `the session cannot be recorded: ${err.message}`)),
      );
    });
    let seq = 0;
    let failed: Error | undefined;
    let lines: string[] = [];
    let bytes = 0;
    let timer: NodeJS.Timeout | undefined;
    out.on("error", (err) => (failed ??= err));
    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (lines.length === 0 || failed) return;
      out.write(lines.join(""));
      lines = [];
      bytes = 0;
    };
    return {
      ok: () => !failed,
      record: (event) => {
        if (failed) return;
        const line = JSON.stringify({ session: sessionId, seq: seq++, at: Date.now(), ...event }) + "\n";
        lines.push(line);
        bytes += line.length;
        if (bytes >= FLUSH_BYTES) flush();
        else timer ??= setTimeout(flush, FLUSH_MS);
      },
      end: () =>
        new Promise<void>((resolve) => {
          flush();
          if (failed) return resolve();
          out.end(() => resolve());
        }),
    };
  }
}
