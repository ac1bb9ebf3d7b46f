import type { ShellCommand, ShellSimpleCommand } from "../policy/command.js";
import { BraceExpansionTooLarge, expandBraces } from "./shell-braces.js";
import { assignment, innerCommands, isName } from "./shell-wrappers.js";

export { commandName } from "./shell-wrappers.js";

/*
 * A POSIX-ish shell tokenizer that finds every simple command a line would run: across pipelines and lists,
 * subshells and groups, command substitutions ($(…), backticks, inside ${…} and $((…)) too), process
 * substitutions, heredoc bodies with expansions, `sh -c` strings, and wrappers such as sudo or xargs (the
 * wrapped command is reported in addition to the wrapper). Words are unquoted; expansions are not performed,
 * so `$X` or `*` stay literal. Single pass, no backtracking: linear in the input except for nested re-parsing,
 * which the depth limit bounds.
 */

const MAX_DEPTH = 8;

class ShellParseError extends Error {}

export function analyzeShell(line: string): ShellCommand {
  const commands: ShellSimpleCommand[] = [];
  try {
    new Parser(line, 0, commands).script();
  } catch (err) {
    // RangeError: the depth limit should prevent it; if not, the line is still just unknown.
    const known = err instanceof ShellParseError || err instanceof BraceExpansionTooLarge || err instanceof RangeError;
    if (!known) throw err;
    // Commands found before the error are kept for messages; policy treats the whole line as unknown.
    return { protocol: "shell", commands, parseError: err.message, text: line };
  }
  return { protocol: "shell", commands, text: line };
}

// ---- the tokenizer/parser ----

/** Reserved words that may start a command; skipped so that `if rm x; then …` reports rm. */
const RESERVED = new Set("{ } ! if then elif else fi while until do done function".split(" "));
const ANSI_ESCAPES: Readonly<Record<string, string>> = {
  a: "\x07",
  b: "\b",
  e: "\x1b",
  E: "\x1b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "?": "?",
};

/** Characters that end a word or start quoting or expansion; "(" also, for array assignments. */
const SPECIAL_IN_WORD = new Set(" \t\n;&|()<>\\'\"`$");

function endsWord(c: string): boolean {
  return " \t\n;&|()<>".includes(c);
}

interface Word {
  text: string;
  /** How many leading characters were plain (unquoted, unescaped, unexpanded). */
  plain: number;
}

interface Heredoc {
  delimiter: string;
  stripTabs: boolean;
  expand: boolean;
}

class Parser {
  private pos = 0;
  private heredocs: Heredoc[] = [];
  private readonly arithmeticAt = new Map<number, boolean>();

  constructor(
    private readonly src: string,
    private depth: number,
    private readonly out: ShellSimpleCommand[],
  ) {
    if (depth > MAX_DEPTH) throw new ShellParseError(`nesting deeper than ${MAX_DEPTH} levels`);
  }

  script(): void {
    this.list(false);
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new ShellParseError(`nesting deeper than ${MAX_DEPTH} levels`);
  }

  private sub(script: string): void {
    new Parser(script, this.depth + 1, this.out).script();
  }

  /** Commands separated by operators, up to the end or (inside a subshell or $(…)) the closing ")". */
  private list(inParens: boolean): void {
    for (;;) {
      this.command();
      const c = this.src[this.pos];
      if (c === undefined) {
        if (inParens) throw new ShellParseError('missing ")"');
        return;
      }
      this.pos++;
      if (c === ")") {
        if (!inParens) throw new ShellParseError('unexpected ")"');
        return;
      }
      if (c === "\n") this.heredocBodies();
      else if (this.src[this.pos] === c || (c === "|" && this.src[this.pos] === "&")) this.pos++; // && || ;; |&
    }
  }

  private command(): void {
    const argv: string[] = [];
    const env: Record<string, string> = {};
    for (;;) {
      this.blanks();
      const c = this.src[this.pos];
      if (c === undefined || c === ";" || c === "|" || c === "\n" || c === ")") break;
      if (c === "&" && this.src[this.pos + 1] !== ">") break;
      if (c === "#") {
        const nl = this.src.indexOf("\n", this.pos);
        this.pos = nl < 0 ? this.src.length : nl;
      } else if (c === "<" || c === ">" || c === "&") {
        this.redirection();
      } else if (c === "(" && argv.length === 1 && /^\(\s*\)/.test(this.src.slice(this.pos, this.pos + 16))) {
        argv.length = 0; // `name() { body; }` defines a function: the body is what matters
        this.pos = this.src.indexOf(")", this.pos) + 1;
      } else if (c === "(") {
        if (argv.length > 0) throw new ShellParseError('unexpected "("');
        this.pos++;
        this.enter();
        this.list(true);
        this.depth--;
      } else {
        const w = this.word();
        const next = this.src[this.pos];
        const fd = w.plain === w.text.length && /^\d+$/.test(w.text) && (next === "<" || next === ">");
        const kv = argv.length === 0 ? assignment(w.text) : undefined;
        if (fd) continue;
        if (kv && w.text.indexOf("=") < w.plain) env[kv[0]] = kv[1];
        else if (argv.length === 0 && w.plain === w.text.length && RESERVED.has(w.text)) {
          if (w.text === "function") {
            this.blanks();
            this.word();
          }
        } else if (w.plain === w.text.length) argv.push(...expandBraces(w.text));
        else argv.push(w.text);
      }
    }
    if (argv.length > 0) this.emit({ argv, env });
  }

  private emit(cmd: ShellSimpleCommand): void {
    this.out.push(cmd);
    for (const inner of innerCommands(cmd)) {
      if ("script" in inner) {
        this.sub(inner.script);
      } else {
        this.enter();
        this.emit(inner);
        this.depth--;
      }
    }
  }

  private blanks(): void {
    for (;;) {
      const c = this.src[this.pos];
      if (c === " " || c === "\t") this.pos++;
      else if (c === "\\" && this.src[this.pos + 1] === "\n") this.pos += 2;
      else return;
    }
  }

  private word(): Word {
    let text = "";
    let plain = -1;
    for (;;) {
      const c = this.src[this.pos];
      if (c === "(" && plain < 0 && text.endsWith("=") && isName(text.slice(0, -1))) {
        text += this.arrayValue();
        continue;
      }
      if (c === undefined || endsWord(c)) break;
      if (c !== "\\" && c !== "'" && c !== '"' && c !== "`" && c !== "$") {
        const start = this.pos;
        while (this.pos < this.src.length && !SPECIAL_IN_WORD.has(this.src[this.pos]!)) this.pos++;
        text += this.src.slice(start, this.pos);
        continue;
      }
      if (plain < 0) plain = text.length;
      if (c === "\\") {
        const n = this.src[this.pos + 1];
        this.pos += n === undefined ? 1 : 2;
        if (n !== "\n") text += n ?? "\\";
      } else if (c === "'") text += this.singleQuoted();
      else if (c === '"') text += this.doubleQuoted();
      else if (c === "`") text += this.backquoted();
      else text += this.dollar(false);
    }
    return { text, plain: plain < 0 ? text.length : plain };
  }

  /** `a=(x y z)`: the words inside the parentheses, kept as one value. */
  private arrayValue(): string {
    this.pos++;
    this.enter();
    const items: string[] = [];
    for (;;) {
      while (" \t\n".includes(this.src[this.pos] ?? "x")) this.pos++;
      const c = this.src[this.pos];
      if (c === undefined) throw new ShellParseError('missing ")" in array assignment');
      if (c === ")") break;
      if (endsWord(c)) throw new ShellParseError(`unexpected "${c}" in array assignment`);
      items.push(this.word().text);
    }
    this.pos++;
    this.depth--;
    return `(${items.join(" ")})`;
  }

  private singleQuoted(): string {
    const end = this.src.indexOf("'", this.pos + 1);
    if (end < 0) throw new ShellParseError("unterminated single quote");
    const text = this.src.slice(this.pos + 1, end);
    this.pos = end + 1;
    return text;
  }

  private doubleQuoted(): string {
    let text = "";
    this.pos++;
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined) throw new ShellParseError("unterminated double quote");
      if (c === '"') break;
      if (c === "\\") {
        const n = this.src[this.pos + 1] ?? "";
        if ('$`"\\\n'.includes(n) && n !== "") {
          if (n !== "\n") text += n;
          this.pos += 2;
          continue;
        }
        text += c;
        this.pos++;
      } else if (c === "$") text += this.dollar(true);
      else if (c === "`") text += this.backquoted();
      else {
        text += c;
        this.pos++;
      }
    }
    this.pos++;
    return text;
  }

  /** Backquoted command substitution: unescape \\, \` and \$, then parse the contents as a script. */
  private backquoted(): string {
    const start = this.pos++;
    let inner = "";
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined) throw new ShellParseError("unterminated backquote");
      this.pos++;
      if (c === "`") break;
      const n = this.src[this.pos];
      if (c === "\\" && n !== undefined && "$`\\".includes(n)) {
        inner += n;
        this.pos++;
      } else inner += c;
    }
    this.sub(inner);
    return this.src.slice(start, this.pos);
  }

  /** `$…` at this.pos: returns the text as written, parsing any command substitution inside. */
  private dollar(inDoubleQuotes: boolean): string {
    const start = this.pos;
    const n = this.src[this.pos + 1];
    if (n === "'" && !inDoubleQuotes) {
      this.pos++;
      return this.ansiC();
    }
    if (n === '"' && !inDoubleQuotes) {
      this.pos++;
      return this.doubleQuoted();
    }
    if (n === "(" && this.src[this.pos + 2] === "(" && this.arithmetic() !== false) {
      return this.src.slice(start, this.pos);
    }
    if (n === "(") {
      this.pos += 2;
      this.enter();
      this.list(true);
      this.depth--;
    } else if (n === "{") {
      this.pos++;
      this.balanced("{", "}");
    } else this.pos++;
    return this.src.slice(start, this.pos);
  }

  /**
   * At `$((`: true (and past it) when it is arithmetic, false (and not moved) when the inner parentheses close
   * before "))", making it `$( (subshell) … )` as bash decides. The answer is memoised per offset: retrying
   * nested `$((` both ways at every level would be exponential.
   */
  private arithmetic(): boolean {
    const start = this.pos;
    const known = this.arithmeticAt.get(start);
    if (known === false) return false;
    const commands = this.out.length;
    const heredocs = this.heredocs.length;
    let ok = false;
    try {
      this.pos += 2;
      this.balanced("(", ")");
      ok = this.src[this.pos] === ")";
    } catch (err) {
      if (!(err instanceof ShellParseError) || known) throw err;
    }
    this.arithmeticAt.set(start, ok);
    if (ok) {
      this.pos++;
      return true;
    }
    this.pos = start;
    this.out.length = commands;
    this.heredocs.length = heredocs;
    return false;
  }

  /** Skips a bracketed expansion body (${…}, arithmetic), parsing command substitutions inside it. */
  private balanced(open: string, close: string): void {
    let level = 0;
    this.enter();
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined) throw new ShellParseError(`missing "${close}"`);
      if (c === "\\") this.pos += 2;
      else if (c === "'") this.singleQuoted();
      else if (c === '"') this.doubleQuoted();
      else if (c === "`") this.backquoted();
      else if (c === "$") this.dollar(false);
      else {
        this.pos++;
        if (c === open) level++;
        else if (c === close && --level === 0) break;
      }
    }
    this.depth--;
  }

  /** $'…' with C escapes decoded, so $'\x72m' is "rm". */
  private ansiC(): string {
    let text = "";
    let truncated = false;
    this.pos++;
    for (;;) {
      const c = this.src[this.pos++];
      if (c === undefined) throw new ShellParseError("unterminated $'…' quote");
      if (c === "'") return text;
      if (c !== "\\") {
        if (!truncated) text += c;
        continue;
      }
      const e = this.src[this.pos++];
      if (e === undefined) throw new ShellParseError("unterminated $'…' quote");
      const simple = ANSI_ESCAPES[e];
      let code: number | undefined;
      if (e >= "0" && e <= "7") {
        this.pos--;
        code = this.number(8, 3);
      } else if (e === "x") code = this.number(16, 2);
      else if (e === "u") code = this.number(16, 4);
      else if (e === "U") code = this.number(16, 8);
      else if (e === "c" && this.pos < this.src.length) code = this.src.charCodeAt(this.pos++) & 0x1f;
      // bash ends the word's value at a NUL: $'rm\0x' is "rm"
      if (code === 0) truncated = true;
      if (truncated) continue;
      if (simple !== undefined) text += simple;
      else text += code !== undefined && code <= 0x10ffff ? String.fromCodePoint(code) : `\\${e}`;
    }
  }

  private number(radix: number, maxDigits: number): number | undefined {
    let digits = "";
    while (digits.length < maxDigits && !Number.isNaN(parseInt(this.src[this.pos] ?? "", radix))) {
      digits += this.src[this.pos++];
    }
    return digits === "" ? undefined : parseInt(digits, radix);
  }

  /** `<`, `>`, `>>`, `<<`, `<<<`, `<>`, `<&`, `>&`, `>|`, `&>`, `&>>` and its target; `<(…)`/`>(…)` run commands. */
  private redirection(): void {
    const c = this.src[this.pos]!;
    const n = this.src[this.pos + 1];
    if ((c === "<" || c === ">") && n === "(") {
      this.pos += 2;
      this.enter();
      this.list(true);
      this.depth--;
      return;
    }
    if (c === "<" && n === "<" && this.src[this.pos + 2] !== "<") {
      this.pos += 2;
      const stripTabs = this.src[this.pos] === "-";
      if (stripTabs) this.pos++;
      const w = this.target();
      this.heredocs.push({ delimiter: w.text, stripTabs, expand: w.plain === w.text.length });
      return;
    }
    this.pos += c === "&" ? 2 : 1;
    const m = this.src[this.pos];
    if (c === "<" && m === "<")
      this.pos += 2; // <<<
    else if (m === ">" || m === "&" || (c === ">" && m === "|") || (c === "<" && m === ">")) this.pos++;
    this.target();
  }

  private target(): Word {
    this.blanks();
    const c = this.src[this.pos];
    if (c === undefined || endsWord(c)) throw new ShellParseError("missing redirection target");
    return this.word();
  }

  /** After a newline: the bodies of pending heredocs; unquoted delimiters mean $(…) and `…` in them run. */
  private heredocBodies(): void {
    for (const doc of this.heredocs) {
      const body: string[] = [];
      while (this.pos < this.src.length) {
        const nl = this.src.indexOf("\n", this.pos);
        const end = nl < 0 ? this.src.length : nl;
        const line = this.src.slice(this.pos, end);
        this.pos = nl < 0 ? end : end + 1;
        if ((doc.stripTabs ? line.replace(/^\t+/, "") : line) === doc.delimiter) break;
        body.push(line);
      }
      if (doc.expand) new Parser(body.join("\n"), this.depth, this.out).expansions();
    }
    this.heredocs = [];
  }

  private expansions(): void {
    while (this.pos < this.src.length) {
      const c = this.src[this.pos];
      if (c === "\\") this.pos += 2;
      else if (c === "$") this.dollar(true);
      else if (c === "`") this.backquoted();
      else this.pos++;
    }
  }
}
