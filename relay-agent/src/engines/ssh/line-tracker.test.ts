import assert from "node:assert/strict";
import { LineTracker, type InputPiece } from "./line-tracker.js";
import { TerminalLine } from "./terminal-line.js";

/** Type `keys` with the shell echoing `echo` after each chunk; returns the completed lines. */
function session(steps: { keys: string; echo?: string }[], prompt = "$ ") {
  const t = new LineTracker();
  t.output(prompt);
  const lines: Extract<InputPiece, { kind: "line" }>[] = [];
  for (const s of steps) {
    for (const p of t.input(Buffer.from(s.keys))) if (p.kind === "line") lines.push(p);
    if (s.echo !== undefined) t.output(s.echo);
  }
  return lines.map((l) => ({ text: l.text, secret: l.secret }));
}

describe("TerminalLine", () => {
  it("follows a line editor: overwrite, backspace, erase, cursor moves, insert and delete", () => {
    const t = new TerminalLine();
    t.write("$ echo abd\x1b[D\x1b[D\x1b[1@c");
    assert.equal(t.text, "$ echo acbd");
    t.write("\x1b[2P");
    assert.equal(t.text, "$ echo ac");
    t.write("\b\b\x1b[K");
    assert.equal(t.text, "$ echo");
    t.write("\r\n$ ");
    assert.equal(t.text, "$");
  });

  it("skips window titles and notices full-screen programs", () => {
    const t = new TerminalLine();
    t.write("\x1b]0;root@vm: ~\x07root@vm:~# ");
    assert.equal(t.text, "root@vm:~#");
    t.write("\x1b[?1049h");
    assert.equal(t.fullScreen, true);
    t.write("\x1b[?1049l");
    assert.equal(t.fullScreen, false);
  });
});

describe("LineTracker", () => {
  it("takes plainly typed lines from the input, before the shell sees Enter", () => {
    assert.deepEqual(session([{ keys: "rm -rf /tmp/x\r" }]), [{ text: "rm -rf /tmp/x", secret: false }]);
  });

  it("applies backspace, Ctrl-U and Ctrl-W", () => {
    assert.deepEqual(session([{ keys: "lx\x7fs -l\r" }, { keys: "junk\x15pwd\r" }, { keys: "echo a b\x17c\r" }]), [
      { text: "ls -l", secret: false },
      { text: "pwd", secret: false },
      { text: "echo a c", secret: false },
    ]);
  });

  it("reads the line from the terminal when arrows or Tab edited it", () => {
    const lines = session([
      { keys: "echo abd", echo: "echo abd" },
      { keys: "\x1b[D\x1b[Dc", echo: "\b\b\x1b[1@c" },
      { keys: "\r" },
    ]);
    assert.deepEqual(lines, [{ text: "echo acbd", secret: false }]);
    const completed = session([{ keys: "cat /et\t", echo: "cat /etc/" }, { keys: "\r" }]);
    assert.deepEqual(completed, [{ text: "cat /etc/", secret: false }]);
  });

  it("splits a chunk at Enter so the line can be judged before its Enter is sent", () => {
    const t = new LineTracker();
    const pieces = t.input(Buffer.from("ls\rpwd\r"));
    assert.deepEqual(
      pieces.map((p) => (p.kind === "bytes" ? p.data.toString() : `<${p.text}>${p.enter.toString()}`)),
      ["ls", "<ls>\r", "pwd", "<pwd>\r"],
    );
  });

  it("says which lines came whole in one chunk (held back until judged) and which were typed before", () => {
    const t = new LineTracker();
    const whole = (keys: string) =>
      t.input(Buffer.from(keys)).flatMap((p) => (p.kind === "line" ? [`${p.text}:${p.whole}`] : []));
    assert.deepEqual(whole("ls\rpwd\r"), ["ls:true", "pwd:true"]);
    assert.deepEqual(whole("ec"), []);
    assert.deepEqual(whole("ho a\recho b\r"), ["echo a:false", "echo b:true"]);
    // A control key in the line (here Ctrl-C, which must reach the shell) is never held back.
    assert.deepEqual(whole("\x03echo c\r"), ["echo c:false"]);
    assert.deepEqual(whole("\x1b[200~echo d\x1b[201~\r"), ["echo d:true"]);
  });

  it("marks an unechoed answer to a password prompt as a secret, not a command", () => {
    assert.deepEqual(session([{ keys: "hunter2\r" }], "[sudo] password for root: "), [
      { text: "hunter2", secret: true },
    ]);
    // The same prompt with the answer echoed (not a password) is a line like any other.
    assert.deepEqual(session([{ keys: "y", echo: "y" }, { keys: "\r" }], "Token name: "), [
      { text: "y", secret: false },
    ]);
  });
});
