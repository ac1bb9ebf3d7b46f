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
  isJudged,
  PacketScanner,
  packetType,
  requestId,
  statusPacket,
} from "./sftp-packets.js";

/** A file the client opened: its command number, and the bytes moved until it is closed. */
interface OpenFile {
  seq: number;
  started: number;
  bytes: number;
}

/**
 * One sftp subsystem channel between the client and the target. Bytes pass unchanged (each chunk
 * the client sent goes on as one write, copied only to join it back where a packet head was read
 * out of it); opens, removes, renames, mkdir/rmdir, setstat and links are judged first (a refused
 * one is answered with SSH_FX_PERMISSION_DENIED and never reaches the target) and recorded as
 * `sftp` commands; each file's bytes written or read go into its result when it is closed.
 */
export class SftpInspector {
  private readonly up = new PacketScanner((head) => (isJudged(head) ? "hold" : this.watchUp(head)));
  private readonly down = new PacketScanner((head) => this.watchDown(head));
  /** Client chunks waiting while a judged request is decided. */
  private readonly queue: Buffer[] = [];
  private judging = false;
  /** Requests in flight whose answers matter: opens (→ handle) and reads (→ data). */
  private readonly opening = new Map<number, number>();
  private readonly reading = new Map<number, string>();
  private readonly files = new Map<string, OpenFile>();

  constructor(
    private readonly client: Duplex,
    private readonly target: Duplex,
    private readonly judge: CommandJudge,
    private readonly recording: SessionRecording,
    private readonly fail: (err: Error) => void,
  ) {}

  start(): void {
    this.client.on("data", (chunk: Buffer) => {
      this.queue.push(chunk);
      this.drain();
    });
    this.target.on("data", (chunk: Buffer) => {
      try {
        this.down.scan(chunk);
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

  /** Client → target, in order: everything after a judged request waits for its decision. */
  private drain(): void {
    try {
      while (!this.judging && this.queue.length > 0) {
        const { forward, held } = this.up.scan(this.queue.shift()!);
        this.send(forward);
        if (!held) continue;
        if (held.rest.length > 0) this.queue.unshift(held.rest);
        this.judging = true;
        this.client.pause();
        this.judgeOperation(held.packet).then(
          () => {
            this.judging = false;
            this.client.resume();
            this.drain();
          },
          (err: Error) => this.fail(err),
        );
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private async judgeOperation(packet: Buffer): Promise<void> {
    const op = fileOperation(packet);
    if (!op) return this.send([packet]); // an extension policy has no words for: passes, as before
    const text = op.argv.map(quote).join(" ");
    const command: ShellCommand = { ...analyzeShell(text), commands: [{ argv: op.argv, env: {} }] };
    const verdict = await this.judge.judge("sftp", command, [op.argv[0]!], () => {});
    if (!verdict.run) {
      this.client.write(statusPacket(op.id, FX_PERMISSION_DENIED, `vigil: ${verdict.message}`));
      return;
    }
    if (packetType(packet) === Fxp.Open) this.opening.set(op.id, verdict.seq);
    else this.recording.record({ $case: "result", value: emptyResult(verdict.seq) });
    this.send([packet]);
  }

  private send(list: Buffer[]): void {
    if (list.length === 0) return;
    // One write: every write to the channel is at least one SSH packet, and a chunk cut at packet
    // heads (the tail of one WRITE, the next head, the start of its data) would go as three.
    const ok = this.target.write(list.length === 1 ? list[0]! : Buffer.concat(list));
    if (!ok) {
      this.client.pause();
      this.target.once("drain", () => this.judging || this.client.resume());
    }
  }

  /** Requests that pass without a decision but whose bytes count: writes, reads, closes. */
  private watchUp(head: Buffer): "pass" {
    switch (packetType(head)) {
      case Fxp.Write: {
        const file = this.files.get(handleOf(head));
        if (file) file.bytes += dataLength(head);
        break;
      }
      case Fxp.Read:
        this.reading.set(requestId(head), handleOf(head));
        break;
      case Fxp.Close: {
        const handle = handleOf(head);
        const file = this.files.get(handle);
        if (file) this.recordResult(file);
        this.files.delete(handle);
        break;
      }
    }
    return "pass";
  }

  /** Target → client: learn open files' handles and count data read. */
  private watchDown(head: Buffer): "pass" {
    const id = requestId(head);
    const type = packetType(head);
    const opened = this.opening.get(id);
    if (opened !== undefined) {
      this.opening.delete(id);
      if (type === Fxp.Handle) this.files.set(handleOf(head), { seq: opened, started: performance.now(), bytes: 0 });
      else this.recording.record({ $case: "result", value: { ...emptyResult(opened), tag: "failed" } });
      return "pass";
    }
    const handle = this.reading.get(id);
    if (handle !== undefined) {
      this.reading.delete(id);
      const file = this.files.get(handle);
      if (file && type === Fxp.Data) file.bytes += dataLength(head);
    }
    return "pass";
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
