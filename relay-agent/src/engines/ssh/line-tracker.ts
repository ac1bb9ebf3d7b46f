import { TerminalLine } from "./terminal-line.js";

/** What the client sent, cut where it pressed Enter: bytes to forward, and completed lines to judge. */
export type InputPiece =
  | { kind: "bytes"; data: Buffer }
  | {
      kind: "line";
      /** The command line as best known (see LineTracker). */
      text: string;
      /** False when the line was typed at a password-like prompt that did not echo it: not a command. */
      secret: boolean;
      /** The Enter key's byte(s), to forward once the line is allowed. */
      enter: Buffer;
      /**
       * Every key of the line came in the same chunk as its Enter (a paste, an agent's write): the
       * bytes piece just before it is the whole line, and can be held back until the line is judged.
       */
      whole: boolean;
    };

// Prompts whose answer the terminal does not echo: what is typed there is a secret, not a command.
const SECRET_PROMPT = /(pass(word|phrase)|PIN|token|secret|otp)[^:]*:\s*$/i;

/**
 * Best-effort command lines of an interactive shell, from both directions of the terminal:
 *
 * - input: what the client types, with backspace, Ctrl-U/W/C applied. When the line uses only those,
 *   the typed text is the line, and it is known before Enter reaches the shell.
 * - echo: the terminal line the shell draws (TerminalLine). When the client edited with arrows, Tab
 *   completion or history, the typed bytes do not spell the line; then the line is what the terminal
 *   shows after the prompt (captured when the first key of the line was typed).
 *
 * Not seen: what a program reads without a prompt of its own, lines inside full-screen programs
 * (the alternate screen pauses tracking), keys bound to macros, and pastes faster than the echo of a
 * previous edit. docs/ssh.md says what this means for policy.
 */
export class LineTracker {
  readonly screen = new TerminalLine();
  private typed: number[] = [];
  /** False once the line used keys that make the typed bytes differ from the line (arrows, Tab…). */
  private clean = true;
  private prompt: string | undefined;
  private escape: "none" | "esc" | "csi" | "ss3" = "none";
  /** Keys of the current line arrived in an earlier chunk (and went to the shell already). */
  private begun = false;
  /** The current line holds a control key (Ctrl-C, an arrow…): its bytes are never held back. */
  private controls = false;
  private csiParams = "";

  /** What the target wrote to the terminal. */
  output(text: string): void {
    this.screen.write(text);
  }

  /** Split one chunk of client input into bytes to forward now and completed lines. */
  input(chunk: Buffer): InputPiece[] {
    if (this.screen.fullScreen) return [{ kind: "bytes", data: chunk }];
    const pieces: InputPiece[] = [];
    let whole = !this.begun;
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0d || (b === 0x0a && this.escape === "none")) {
        if (i > from) pieces.push({ kind: "bytes", data: chunk.subarray(from, i) });
        // \r\n from some clients is one Enter.
        const end = b === 0x0d && chunk[i + 1] === 0x0a ? i + 2 : i + 1;
        const plain = !this.controls;
        pieces.push({ kind: "line", ...this.finishLine(), enter: chunk.subarray(i, end), whole: whole && plain });
        whole = true;
        from = end;
        i = end - 1;
        continue;
      }
      this.key(b);
    }
    if (from < chunk.length) {
      pieces.push({ kind: "bytes", data: chunk.subarray(from) });
      this.begun = true;
    }
    return pieces;
  }

  private key(b: number): void {
    if (this.escape !== "none") return this.escapeByte(b);
    if ((b < 0x20 && b !== 0x1b) || b === 0x7f) this.controls = true;
    if (this.typed.length === 0 && this.clean) this.prompt ??= this.screen.text;
    switch (b) {
      case 0x1b:
        this.escape = "esc";
        return;
      case 0x7f:
      case 0x08: // backspace: drop one UTF-8 character
        while (this.typed.length > 0 && (this.typed[this.typed.length - 1]! & 0xc0) === 0x80) this.typed.pop();
        this.typed.pop();
        return;
      case 0x15: // Ctrl-U
      case 0x03: // Ctrl-C
        this.reset();
        return;
      case 0x17: {
        // Ctrl-W: the word before the cursor
        const text = this.text().replace(/\S+\s*$/, "");
        this.typed = [...Buffer.from(text)];
        return;
      }
    }
    if (b < 0x20)
      this.clean = false; // Tab, Ctrl-R, Ctrl-A…: the line is what the terminal shows
    else this.typed.push(b);
  }

  private escapeByte(b: number): void {
    const ch = String.fromCharCode(b);
    if (this.escape === "esc") {
      this.escape = ch === "[" ? "csi" : ch === "O" ? "ss3" : "none";
      this.csiParams = "";
      if (this.escape === "none") {
        this.clean = false; // Alt-key bindings
        this.controls = true;
      }
      return;
    }
    if (this.escape === "ss3") {
      this.escape = "none";
      this.clean = false;
      this.controls = true;
      return;
    }
    if (b >= 0x40 && b <= 0x7e) {
      this.escape = "none";
      // Bracketed paste markers only frame typed text.
      if (!(ch === "~" && (this.csiParams === "200" || this.csiParams === "201"))) {
        this.clean = false;
        this.controls = true;
      }
    } else this.csiParams += ch;
  }

  private finishLine(): { text: string; secret: boolean } {
    const prompt = this.prompt ?? "";
    const shown = this.screen.text;
    const typed = this.text();
    const echoed = typed.length > 0 && shown.includes(typed.trim());
    let text: string;
    if (this.clean) text = typed;
    else text = shown.startsWith(prompt) ? shown.slice(prompt.length) : shown;
    const secret = this.clean && !echoed && typed.length > 0 && SECRET_PROMPT.test(prompt || shown);
    this.reset();
    this.controls = false;
    return { text: text.trim(), secret };
  }

  private text(): string {
    return Buffer.from(this.typed).toString("utf8");
  }

  private reset(): void {
    this.begun = false;
    this.typed = [];
    this.clean = true;
    this.prompt = undefined;
  }
}
