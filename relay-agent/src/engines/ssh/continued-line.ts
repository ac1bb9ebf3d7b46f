/** Lines joined at most: past this, the start is dropped (input to a program that is not a shell, most likely). */
const MAX_LINES = 32;
const MAX_CHARS = 16 * 1024;

// Parse errors that mean "the shell reads on": the quote opened on this line closes on a later one.
const OPEN_QUOTE = /^unterminated (single quote|double quote|backquote|\$'…' quote)/;

/**
 * A command the shell is still reading: after a line that ends in a backslash or inside quotes,
 * bash shows its continuation prompt and the next line is part of the same command. Judging the
 * next line alone would let `touch \` + Enter + `forbidden` through, so each line is judged joined
 * with the lines it continues.
 */
export class ContinuedLine {
  private start: string | undefined;
  private lines = 0;

  /** The text to judge for a line just typed: with the lines it continues, if any. */
  join(line: string): string {
    return this.start === undefined ? line : `${this.start}\n${line}`;
  }

  /** After judging `text` (from join): whether the shell reads on; if so it is kept for the next line. */
  readsOn(text: string, parseError: string | undefined): boolean {
    const open = (parseError !== undefined && OPEN_QUOTE.test(parseError)) || endsInBackslash(text);
    if (!open || ++this.lines > MAX_LINES || text.length > MAX_CHARS) {
      this.reset();
      return false;
    }
    this.start = text;
    return true;
  }

  get pending(): boolean {
    return this.start !== undefined;
  }

  /** Ctrl-C, or a refused line the shell was told to drop. */
  reset(): void {
    this.start = undefined;
    this.lines = 0;
  }
}

/** An odd number of trailing backslashes: the last one escapes the newline. */
function endsInBackslash(text: string): boolean {
  let n = 0;
  for (let i = text.length - 1; i >= 0 && text[i] === "\\"; i--) n++;
  return n % 2 === 1;
}
