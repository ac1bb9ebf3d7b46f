import type { Duplex } from "node:stream";
import { analyzeShell } from "../../../../lib/analyze/shell.js";
import type { ShellCommand } from "../../../../lib/policy/command.js";
import type { SessionRecording } from "../../recording/recorder.js";
import { emptyResult, type CommandJudge } from "./judge.js";
import {
  dataLength,
  fileOperation,
  FX_PERMISSION_DENIED,
  Fxp,
  handleOf,
  packets,
  packetType,
  requestId,
  statusPacket,
  type FileOperation,
} from "./sftp-packets.js";

/** A file the client opened: its command number, and the bytes moved until it is closed. */
interface OpenFile {
  seq: number;
  started: number;
  bytes: number;
}

/**
 * One sftp subsystem channel between the client and the target. Packets pass unchanged; opens,
 * removes, renames, mkdir/rmdir, setstat and links are judged first (a refused one is answered with
 * SSH_FX_PERMISSION_DENIED and never reaches the target) and recorded as `sftp` commands; each file's
 * bytes written or read go into its result when it is closed.
 */
export class SftpInspector {
  private up: Buffer = Buffer.alloc(0);
  private down: Buffer = Buffer.alloc(0);
  /** Requests in flight whose answers matter: opens (→ handle) and reads (→ data). */
  private readonly opening = new Map<number, { seq: number }>();
  private readonly reading = new Map<number, string>();
  private readonly files = new Map<string, OpenFile>();
  private busy = false;

  constructor(
    private readonly client: Duplex,
    private readonly target: Duplex,
    private readonly judge: CommandJudge,
    private readonly recording: SessionRecording,
    private readonly fail: (err: Error) => void,
  ) {}

  start(): void {
    this.client.on("data", (chunk: Buffer) => {
      this.up = this.up.length ? Buffer.concat([this.up, chunk]) : chunk;
      if (!this.busy) void this.pumpUp();
    });
    this.target.on("data", (chunk: Buffer) => {
      try {
        this.watchDown(chunk);
      } catch (err) {
        return this.fail(err as Error);
      }
      if (!this.client.write(chunk)) {
        this.target.pause();
        this.client.once("drain", () => this.target.resume());
      }
    });
  }

  /** Files still open when the channel closes get their result too. */
  finish(): void {
    for (const file of this.files.values()) this.recordResult(file);
    this.files.clear();
  }

  /** Client → target: forward whole packets in order, holding the stream while one is judged. */
  private async pumpUp(): Promise<void> {
    this.busy = true;
    try {
      for (;;) {
        const { list, rest } = packets(this.up);
        if (list.length === 0) break;
        let run: Buffer[] = [];
        let held = false;
        for (const [i, packet] of list.entries()) {
          const op = fileOperation(packet);
          if (!op) {
            this.watchUp(packet);
            run.push(packet);
            continue;
          }
          this.send(run);
          run = [];
          // Everything after a judged packet waits for its decision.
          this.up = Buffer.concat([...list.slice(i + 1), this.up.subarray(rest)]);
          held = true;
          await this.judgeOperation(op, packet);
          break;
        }
        if (!held) {
          this.send(run);
          this.up = this.up.subarray(rest);
        }
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.busy = false;
    }
  }

  private async judgeOperation(op: FileOperation, packet: Buffer): Promise<void> {
    const text = op.argv.map(quote).join(" ");
    const command: ShellCommand = { ...analyzeShell(text), commands: [{ argv: op.argv, env: {} }] };
    this.client.pause();
    const verdict = await this.judge.judge("sftp", command, [op.argv[0]!], () => {});
    this.client.resume();
    if (!verdict.run) {
      this.client.write(statusPacket(op.id, FX_PERMISSION_DENIED, `vigil: ${verdict.message}`));
      return;
    }
    if (packetType(packet) === Fxp.Open) this.opening.set(op.id, { seq: verdict.seq });
    else this.recording.record({ $case: "result", value: emptyResult(verdict.seq) });
    this.send([packet]);
  }

  private send(list: Buffer[]): void {
    if (list.length === 0) return;
    const ok = this.target.write(list.length === 1 ? list[0]! : Buffer.concat(list));
    if (!ok) {
      this.client.pause();
      this.target.once("drain", () => this.client.resume());
    }
  }

  /** Requests that pass without a decision but whose bytes count: writes, reads, closes. */
  private watchUp(packet: Buffer): void {
    switch (packetType(packet)) {
      case Fxp.Write: {
        const file = this.files.get(handleOf(packet));
        if (file) file.bytes += dataLength(packet);
        return;
      }
      case Fxp.Read:
        this.reading.set(requestId(packet), handleOf(packet));
        return;
      case Fxp.Close: {
        const handle = handleOf(packet);
        const file = this.files.get(handle);
        if (file) this.recordResult(file);
        this.files.delete(handle);
        return;
      }
    }
  }

  /** Target → client: learn open files' handles and count data read; the bytes pass unchanged. */
  private watchDown(chunk: Buffer): void {
    this.down = this.down.length ? Buffer.concat([this.down, chunk]) : chunk;
    const { list, rest } = packets(this.down);
    this.down = rest === this.down.length ? Buffer.alloc(0) : Buffer.from(this.down.subarray(rest));
    for (const packet of list) {
      const id = requestId(packet);
      const type = packetType(packet);
      const opened = this.opening.get(id);
      if (opened) {
        this.opening.delete(id);
        if (type === Fxp.Handle)
          this.files.set(handleOf(packet), { seq: opened.seq, started: performance.now(), bytes: 0 });
        else this.recording.record({ $case: "result", value: { ...emptyResult(opened.seq), tag: "failed" } });
        continue;
      }
      const handle = this.reading.get(id);
      if (handle !== undefined) {
        this.reading.delete(id);
        const file = this.files.get(handle);
        if (file && type === Fxp.Data) file.bytes += dataLength(packet);
      }
    }
  }

  private recordResult(file: OpenFile): void {
    this.recording.record({
      $case: "result",
      value: {
        ...emptyResult(file.seq),
        bytes: BigInt(file.bytes),
        durationUs: BigInt(Math.round((performance.now() - file.started) * 1000)),
      },
    });
  }
}

/** Paths as a shell would read them back, for the recorded text. */
function quote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
