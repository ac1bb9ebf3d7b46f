import { StringDecoder } from "node:string_decoder";
import type { ClientChannel, Client as SshClient, PseudoTtyInfo, ServerChannel, Session } from "ssh2";
import { analyzeShell, commandName } from "../../../../lib/analyze/shell.js";
import type { Masker } from "../../../../lib/masking/masker.js";
import type { MaskPlan } from "../../../../lib/policy/evaluate.js";
import { Stream } from "../../../../proto/gen/vigil/v1/recording.js";
import type { SessionContext } from "../engine.js";
import { ContinuedLine } from "./continued-line.js";
import { ClientEnvironment } from "./environment.js";
import { emptyResult, type CommandJudge } from "./judge.js";
import { LineTracker, type InputPiece } from "./line-tracker.js";
import { OutputLog } from "./output-log.js";
import { SftpInspector } from "./sftp.js";

/** Exit status of a command Vigil refused: the shell's "found but cannot run". */
export const REFUSED_STATUS = 126;

/** Programs whose exec output is a file transfer protocol, not text: recorded as sizes only. */
const TRANSFER_PROGRAMS = new Set(["scp", "rsync", "sftp-server"]);

// Sent to the shell in place of a refused line's Enter: end of line, erase it, an empty Enter for a new prompt.
const CANCEL_LINE = Buffer.from("\x05\x15\r");
// The same at a continuation prompt, where an Enter would run what came before: Ctrl-C drops the whole command.
const CANCEL_CONTINUED = Buffer.from("\x05\x15\x03");
// For a refused line the shell never saw (held back whole): an empty Enter, for a new prompt.
const NEW_PROMPT = Buffer.from("\r");

export interface ChannelDeps {
  ctx: SessionContext;
  target: SshClient;
  judge: CommandJudge;
  /** Records protocol parameters learned on the way (terminal type, pty). */
  learned(params: Record<string, string>): void;
}

/**
 * One session channel of the client's SSH connection: what it asks for (pty, env, window changes,
 * signals) is passed to a session channel of its own on the target; shell, exec and the sftp
 * subsystem start there once policy allowed them. Agent and X11 forwarding are refused.
 *
 * Requests are accepted at once, before the target's channel is open: OpenSSH sends data right after
 * the request (sftp its INIT) without waiting for the answer, and ssh2 drops data for a channel that
 * has not been accepted yet. Accepted channels buffer what arrives until they are wired.
 */
export class SessionChannel {
  private pty: PseudoTtyInfo | undefined;
  private readonly env: ClientEnvironment;
  private target: ClientChannel | undefined;
  private started = false;
  private readonly continued = new ContinuedLine();

  constructor(
    private readonly session: Session,
    private readonly deps: ChannelDeps,
  ) {
    const { ctx } = deps;
    this.env = new ClientEnvironment(deps.judge);
    session.on("pty", (accept, _reject, info) => {
      this.pty = info;
      deps.learned({ pty: "true", term: info.term });
      this.resize(info.cols, info.rows);
      accept?.();
    });
    session.on("window-change", (accept, _reject, info) => {
      this.resize(info.cols, info.rows);
      // Before the target's channel is open, the size it will be opened with.
      if (this.pty)
        Object.assign(this.pty, { rows: info.rows, cols: info.cols, height: info.height, width: info.width });
      this.target?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    // Judged before the shell or command starts (it waits for the decisions): see ClientEnvironment.
    session.on("env", (accept, reject, info) => {
      void this.env.request(info.key, info.val).then((ok) => (ok ? accept?.() : reject?.()));
    });
    // A signal goes to the session's own process, which policy already let run: passed on, not
    // judged, but recorded (who stopped what is evidence too).
    session.on("signal", (accept, reject, info) => {
      if (!this.target) return reject?.(); // nothing runs yet to signal
      try {
        this.target.signal(info.name);
      } catch {
        return reject?.(); // a signal name ssh2 does not know
      }
      deps.judge.note("signal", `signal ${info.name}`, ["signal"], "not judged: a signal to the session's own process");
      accept?.();
    });
    session.on("auth-agent", (_accept, reject) => {
      ctx.log.info("agent forwarding refused");
      deps.learned({ agent_forwarding: "refused" });
      reject?.();
    });
    session.on("x11", (_accept, reject) => {
      ctx.log.info("X11 forwarding refused");
      deps.learned({ x11_forwarding: "refused" });
      reject?.();
    });
    session.on(
      "shell",
      (accept, reject) => this.once(reject) && void this.shell(accept).catch((err) => this.failed(err)),
    );
    session.on(
      "exec",
      (accept, reject, info) =>
        this.once(reject) && void this.exec(accept, info.command).catch((err) => this.failed(err)),
    );
    session.on("subsystem", (accept, reject, info) => {
      if (info.name !== "sftp" || !this.once(reject)) return reject?.();
      void this.sftp(accept).catch((err) => this.failed(err));
    });
  }

  /** The target would not open its side: say so on stderr and end with 255, as ssh does for its own failures. */
  private async targetRefused(client: ServerChannel, what: string, err: Error): Promise<void> {
    this.deps.ctx.log.info({ err: err.message }, `the target refused the ${what}`);
    client.stderr.write(`vigil: the target refused the ${what}: ${err.message}${this.pty ? "\r\n" : "\n"}`);
    await flushed(client);
    client.exit(255);
    client.end();
  }

  /** A session channel runs one thing: a second shell/exec/subsystem request is refused. */
  private once(reject: (() => void) | undefined): boolean {
    if (!this.started) return (this.started = true);
    reject?.();
    return false;
  }

  private failed(err: unknown): void {
    this.deps.ctx.log.warn({ err: (err as Error).message }, "ssh channel failed");
    this.target?.close();
  }

  private resize(cols: number, rows: number): void {
    this.deps.ctx.recording.record({ $case: "resize", value: { cols, rows } });
  }

  private ptyOptions() {
    const p = this.pty;
    return p
      ? { rows: p.rows, cols: p.cols, width: p.width, height: p.height, term: p.term, modes: p.modes }
      : undefined;
  }

  /** The judged environment for the target; what was refused is said on the client's stderr and recorded. */
  private async environment(client: ServerChannel): Promise<Record<string, string>> {
    const { env, refused } = await this.env.settled();
    for (const message of refused) {
      const line = `${message}${this.pty ? "\r\n" : "\n"}`;
      client.stderr.write(line);
      this.deps.ctx.recording.record({
        $case: "output",
        value: { command: 0, stream: Stream.STREAM_STDERR, data: line },
      });
    }
    return env;
  }

  private async shell(accept: () => ServerChannel): Promise<void> {
    const client = accept();
    const env = await this.environment(client);
    let target: ClientChannel;
    try {
      target = await new Promise<ClientChannel>((resolve, reject) =>
        this.deps.target.shell(this.ptyOptions() ?? false, { env }, (err, ch) => (err ? reject(err) : resolve(ch))),
      );
    } catch (err) {
      return this.targetRefused(client, "shell", err as Error);
    }
    this.target = target;
    const masks = this.deps.ctx.policy.current.baseMasks;
    // Lines are tracked only on a terminal: without one, input is data for a program, not lines.
    this.wire(client, target, {
      masks,
      command: 0,
      tracker: this.pty ? new LineTracker() : undefined,
      started: performance.now(),
    });
  }

  private async exec(accept: () => ServerChannel, text: string): Promise<void> {
    const client = accept();
    const env = await this.environment(client);
    const eol = this.pty ? "\r\n" : "\n";
    const command = analyzeShell(text);
    const kinds = [...new Set(command.commands.map((c) => commandName(c.argv[0] ?? "")))].filter(Boolean);
    let seq = 0;
    // What Vigil tells the client goes to the recording too: a replay shows what the client saw.
    const say = (message: string) => {
      client.stderr.write(message);
      this.deps.ctx.recording.record({
        $case: "output",
        value: { command: seq, stream: Stream.STREAM_STDERR, data: message },
      });
    };
    const verdict = await this.deps.judge.judge("exec", command, kinds, (id, rule, commandSeq) => {
      seq = commandSeq;
      say(`vigil: waiting for approval ${id} (rule ${rule})${eol}`);
    });
    seq = verdict.seq;
    if (!verdict.run) {
      say(`vigil: ${verdict.message}${eol}`);
      this.deps.ctx.recording.record({
        $case: "result",
        value: { ...emptyResult(verdict.seq), exitStatus: REFUSED_STATUS },
      });
      await flushed(client);
      client.exit(REFUSED_STATUS);
      client.end();
      return;
    }
    let target: ClientChannel;
    try {
      target = await new Promise<ClientChannel>((resolve, reject) =>
        this.deps.target.exec(text, { env, ...(this.pty ? { pty: this.ptyOptions() } : {}) }, (err, ch) =>
          err ? reject(err) : resolve(ch),
        ),
      );
    } catch (err) {
      return this.targetRefused(client, "command", err as Error);
    }
    this.target = target;
    const transfer = kinds.some((k) => TRANSFER_PROGRAMS.has(k));
    this.wire(client, target, {
      masks: verdict.masks,
      command: verdict.seq,
      recordOutput: !transfer,
      // A command on a terminal may be a shell itself (`ssh -t host bash`): its lines are judged as a shell's.
      tracker: this.pty && !transfer ? new LineTracker() : undefined,
      started: performance.now(),
    });
  }

  private async sftp(accept: () => ServerChannel): Promise<void> {
    const client = accept();
    let target: ClientChannel;
    try {
      target = await new Promise<ClientChannel>((resolve, fail) =>
        this.deps.target.subsys("sftp", (err, ch) => (err ? fail(err) : resolve(ch))),
      );
    } catch (err) {
      return this.targetRefused(client, "sftp subsystem", err as Error);
    }
    this.target = target;
    const inspector = new SftpInspector(client, target, this.deps.judge, this.deps.ctx.recording, (err) => {
      this.deps.ctx.log.warn({ err: err.message }, "sftp channel closed: unreadable packet");
      client.destroy();
      target.close();
    });
    inspector.start();
    const exit = exitOf(target);
    client.on("end", () => target.end());
    client.on("close", () => target.close());
    target.on("close", () => {
      inspector.finish();
      // scp counts a missing exit status as a failed transfer.
      void flushed(client).then(() => {
        sendExit(client, exit());
        client.end();
      });
    });
  }

  /**
   * Carry a shell's or an exec's bytes both ways with backpressure: output to the recording (masked
   * for the record) and to the client (masked live when policy says so), input through the line
   * tracker on a terminal, then stderr, the exit status or signal, and the close.
   */
  private wire(
    client: ServerChannel,
    target: ClientChannel,
    opts: { masks: MaskPlan; command: number; tracker?: LineTracker; recordOutput?: boolean; started: number },
  ): void {
    const { ctx, judge } = this.deps;
    const live = judge.maskers.get(opts.masks.live);
    const recordMasker: Masker | undefined = judge.maskers.get(opts.masks.record);
    const log = new OutputLog(ctx.recording, () => recordMasker);
    log.command = opts.command;
    const echo = new StringDecoder("utf8");
    let bytes = 0;
    const exit = exitOf(target);

    const toClient = (stream: typeof Stream.STREAM_OUTPUT | typeof Stream.STREAM_STDERR, data: Buffer) => {
      bytes += data.length;
      const shown = (live && live.maskBuffer(data)) ?? data;
      if (opts.recordOutput !== false) log.write(stream, shown);
      if (opts.tracker && stream === Stream.STREAM_OUTPUT) opts.tracker.output(echo.write(shown));
      const out = stream === Stream.STREAM_OUTPUT ? client : client.stderr;
      if (!out.write(shown)) {
        target.pause();
        out.once("drain", () => target.resume());
      }
    };
    target.on("data", (d: Buffer) => toClient(Stream.STREAM_OUTPUT, d));
    target.stderr.on("data", (d: Buffer) => toClient(Stream.STREAM_STDERR, d));

    const forward = (data: Buffer) => {
      if (!target.write(data)) {
        client.pause();
        target.once("drain", () => client.resume());
      }
    };
    let pending: Promise<void> = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      if (!opts.tracker) return forward(chunk);
      const pieces = opts.tracker.input(chunk);
      if (pieces.every((p) => p.kind === "bytes")) {
        // Ctrl-C drops a command the shell was still reading (after the lines before it are judged).
        if (chunk.includes(0x03)) pending = pending.then(() => this.continued.reset());
        return forward(chunk);
      }
      // A completed line is judged before its Enter reaches the shell; input after it waits.
      client.pause();
      pending = pending.then(async () => {
        for (let i = 0; i < pieces.length; i++) {
          const piece = pieces[i]!;
          const next = pieces[i + 1];
          // A line whose every key came with its Enter (a paste, an agent's write) is held back whole
          // until it is judged: a refused one never reaches the shell, even one busy with the line before.
          if (piece.kind === "bytes" && next?.kind === "line" && next.whole) {
            await this.linePiece(next, client, forward, log, piece.data);
            i++;
          } else await this.linePiece(piece, client, forward, log);
        }
        client.resume();
      });
    });
    client.on("end", () => void pending.then(() => target.end()));
    client.on("close", () => target.close());
    target.on("close", () => {
      void pending.then(async () => {
        log.end();
        const status = exit();
        const exitFields =
          status.code !== undefined ? { exitStatus: status.code } : status.signal ? { exitSignal: status.signal } : {};
        ctx.recording.record({
          $case: "result",
          value: {
            ...emptyResult(opts.command),
            ...exitFields,
            bytes: BigInt(bytes),
            durationUs: BigInt(Math.round((performance.now() - opts.started) * 1000)),
          },
        });
        await flushed(client);
        sendExit(client, status);
        client.end();
      });
    });
  }

  /**
   * One piece of terminal input: bytes pass; a line is judged, then its Enter passes or the line is
   * cancelled. `held`: the line's keys, not sent yet (the whole line came in one chunk).
   */
  private async linePiece(
    piece: InputPiece,
    client: ServerChannel,
    forward: (b: Buffer) => void,
    log: OutputLog,
    held?: Buffer,
  ) {
    if (piece.kind === "bytes") {
      if (piece.data.includes(0x03)) this.continued.reset();
      return forward(piece.data);
    }
    const send = () => forward(held ? Buffer.concat([held, piece.enter]) : piece.enter);
    if (piece.secret || (piece.text === "" && !this.continued.pending)) return send();
    const text = this.continued.join(piece.text);
    const command = analyzeShell(text);
    const kinds = [...new Set(command.commands.map((c) => commandName(c.argv[0] ?? "")))].filter(Boolean);
    log.flush();
    if (this.continued.readsOn(text, command.parseError)) {
      // Judged once it is whole, with the next line(s); recorded as typed so far.
      log.command = this.deps.judge.note(
        "shell",
        text,
        kinds,
        "not judged yet: the command continues on the next line",
      );
      return send();
    }
    if (command.parseError !== undefined) {
      // Often input to a program (a REPL, a here-document), not to the shell: recorded, not judged.
      log.command = this.deps.judge.note("shell", text, kinds, `not judged: ${command.parseError}`);
      return send();
    }
    const continues = text !== piece.text;
    // What Vigil tells the client goes into the recorded output too: a replay shows what the client saw.
    const say = (message: string) => {
      client.write(message);
      log.write(Stream.STREAM_OUTPUT, Buffer.from(message));
    };
    const verdict = await this.deps.judge.judge("shell", command, kinds, (id, rule, seq) => {
      log.command = seq;
      say(`\r\nvigil: waiting for approval ${id} (rule ${rule})\r\n`);
    });
    log.flush();
    log.command = verdict.seq;
    if (verdict.run) return send();
    say(`\r\nvigil: ${verdict.message}\r\n`);
    forward(continues ? CANCEL_CONTINUED : held ? NEW_PROMPT : CANCEL_LINE);
  }
}

interface ExitStatus {
  code?: number;
  signal?: string;
  dumped?: boolean;
  desc?: string;
}

/** The target channel's exit status or signal, once it has sent one. */
function exitOf(target: ClientChannel): () => ExitStatus {
  let exit: ExitStatus = {};
  target.on("exit", (code: number | null, signal?: string, dumped?: boolean, desc?: string) => {
    exit =
      code !== null && code !== undefined ? { code } : { signal: signal ?? "KILL", dumped: !!dumped, desc: desc ?? "" };
  });
  return () => exit;
}

function sendExit(client: ServerChannel, exit: ExitStatus): void {
  if (exit.code !== undefined) client.exit(exit.code);
  else if (exit.signal) client.exit(exit.signal, exit.dumped, exit.desc);
}

/** Resolves once everything written to the channel (stdout and stderr) has gone out, so an exit status follows it. */
function flushed(ch: ServerChannel): Promise<void> {
  return Promise.all([
    new Promise<void>((r) => ch.write(Buffer.alloc(0), () => r())),
    new Promise<void>((r) => ch.stderr.write(Buffer.alloc(0), () => r())),
  ]).then(() => undefined);
}
