import assert from "node:assert/strict";
import { analyzeShell } from "../../../../lib/analyze/shell.js";
import { ContinuedLine } from "./continued-line.js";

/** Feed lines as the engine does; returns the text judged for the last one, or undefined while it reads on. */
function feed(c: ContinuedLine, ...lines: string[]): string | undefined {
  let judged: string | undefined;
  for (const line of lines) {
    const text = c.join(line);
    judged = c.readsOn(text, analyzeShell(text).parseError) ? undefined : text;
  }
  return judged;
}

describe("ContinuedLine", () => {
  it("joins a line ending in a backslash with the next", () => {
    const c = new ContinuedLine();
    assert.equal(feed(c, "touch \\"), undefined);
    assert.equal(feed(c, "/tmp/x"), "touch \\\n/tmp/x");
    assert.deepEqual(analyzeShell("touch \\\n/tmp/x").commands[0]!.argv, ["touch", "/tmp/x"]);
    assert.equal(feed(c, "echo next"), "echo next");
  });

  it("an escaped backslash at the end does not continue", () => {
    assert.equal(feed(new ContinuedLine(), "echo \\\\"), "echo \\\\");
  });

  it("joins lines until an open quote closes", () => {
    const c = new ContinuedLine();
    assert.equal(feed(c, 'touch "a', "b", 'c"'), 'touch "a\nb\nc"');
    assert.equal(feed(c, "echo 'x", "y'"), "echo 'x\ny'");
  });

  it("forgets the start on reset (Ctrl-C) and past its limits", () => {
    const c = new ContinuedLine();
    feed(c, "touch \\");
    c.reset();
    assert.equal(feed(c, "/tmp/x"), "/tmp/x");
    const open = new ContinuedLine();
    feed(open, "echo '", ...Array.from({ length: 40 }, () => "more"));
    assert.equal(open.pending, false);
  });
});
