/**
 * The line the terminal shows at the cursor, rebuilt from what the target writes to it: enough of a
 * terminal (carriage return, backspace, erase, cursor moves, insert/delete characters) to follow a
 * shell's line editor as it echoes, edits, completes and recalls history. Escape sequences it does not
 * need are skipped. Also notices full-screen programs (the alternate screen), where lines mean nothing.
 */
export class TerminalLine {
  private chars: string[] = [];
  private cursor = 0;
  private state: "text" | "esc" | "csi" | "osc" | "osc-esc" | "charset" = "text";
  private params = "";
  /** True while a full-screen program (vim, less, top) has switched to the alternate screen. */
  fullScreen = false;

  /** The current line as shown (trailing blanks dropped). */
  get text(): string {
    return this.chars.join("").trimEnd();
  }

  write(data: string): void {
    for (const ch of data) this.char(ch);
  }

  private char(ch: string): void {
    switch (this.state) {
      case "esc":
        return this.escape(ch);
      case "csi":
        // Parameters and intermediates until a final byte in @..~.
        if (ch >= "@" && ch <= "~") {
          this.state = "text";
          this.csi(this.params, ch);
        } else this.params += ch;
        return;
      case "osc":
        // Window titles and the like, up to BEL or ESC \.
        if (ch === "\x07") this.state = "text";
        else if (ch === "\x1b") this.state = "osc-esc";
        return;
      case "osc-esc":
        this.state = ch === "\\" ? "text" : "osc";
        return;
      case "charset":
        this.state = "text";
        return;
      case "text":
        break;
    }
    switch (ch) {
      case "\x1b":
        this.state = "esc";
        return;
      case "\r":
        this.cursor = 0;
        return;
      case "\n":
        this.chars = [];
        this.cursor = 0;
        return;
      case "\b":
        this.cursor = Math.max(0, this.cursor - 1);
        return;
      case "\t":
        this.cursor = (Math.floor(this.cursor / 8) + 1) * 8;
        return;
    }
    if (ch < " " || ch === "\x7f") return; // BEL and other controls draw nothing
    while (this.chars.length < this.cursor) this.chars.push(" ");
    this.chars[this.cursor++] = ch;
  }

  private escape(ch: string): void {
    this.params = "";
    if (ch === "[") this.state = "csi";
    else if (ch === "]" || ch === "P" || ch === "_" || ch === "^") this.state = "osc";
    else if (ch === "(" || ch === ")" || ch === "#") this.state = "charset";
    else this.state = "text"; // ESC 7, ESC 8, ESC =, ESC >, …
  }

  private csi(params: string, final: string): void {
    if (params.startsWith("?")) {
      // DEC private modes: 47, 1047, 1049 switch to and from the alternate screen.
      if (/^\?(47|1047|1049)$/.test(params) && (final === "h" || final === "l")) {
        this.fullScreen = final === "h";
        this.chars = [];
        this.cursor = 0;
      }
      return;
    }
    const n = Number.parseInt(params, 10);
    const count = Number.isFinite(n) && n > 0 ? n : 1;
    switch (final) {
      case "K": // erase in line: 0 to the end, 1 to the start, 2 all
        if (!params || params === "0") this.chars.length = Math.min(this.chars.length, this.cursor);
        else if (params === "1") for (let i = 0; i <= this.cursor && i < this.chars.length; i++) this.chars[i] = " ";
        else this.chars = [];
        return;
      case "C":
        this.cursor += count;
        return;
      case "D":
        this.cursor = Math.max(0, this.cursor - count);
        return;
      case "G":
        this.cursor = count - 1;
        return;
      case "P":
        this.chars.splice(this.cursor, count);
        return;
      case "@":
        if (this.cursor < this.chars.length) this.chars.splice(this.cursor, 0, ...Array<string>(count).fill(" "));
        return;
      case "X":
        for (let i = this.cursor; i < this.cursor + count && i < this.chars.length; i++) this.chars[i] = " ";
        return;
      case "J":
      case "H":
        // Clearing the screen or moving home starts the line afresh.
        if (final === "H" || params === "2" || params === "3") {
          this.chars = [];
          this.cursor = 0;
        }
        return;
    }
  }
}
