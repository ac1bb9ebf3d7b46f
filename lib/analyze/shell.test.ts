import assert from "node:assert/strict";
import { analyzeShell, commandName } from "./shell.js";

/** The argv of every command the line runs. */
function argvs(line: string): string[][] {
  const cmd = analyzeShell(line);
  assert.equal(cmd.parseError, undefined, cmd.parseError);
  return cmd.commands.map((c) => c.argv);
}

describe("analyzeShell", () => {
  it("splits simple commands into argv", () => {
    assert.deepEqual(argvs("rm -rf /"), [["rm", "-rf", "/"]]);
    assert.deepEqual(argvs("rm -r -f /"), [["rm", "-r", "-f", "/"]]);
    assert.deepEqual(argvs("  ls\t-la   /tmp  "), [["ls", "-la", "/tmp"]]);
    assert.deepEqual(argvs(""), []);
    assert.equal(analyzeShell("ls").text, "ls");
    assert.equal(analyzeShell("ls").protocol, "shell");
  });

  it("reports the wrapped command of sudo and friends as well as the wrapper", () => {
    assert.deepEqual(argvs("sudo rm -rf --no-preserve-root /"), [
      ["sudo", "rm", "-rf", "--no-preserve-root", "/"],
      ["rm", "-rf", "--no-preserve-root", "/"],
    ]);
    assert.deepEqual(argvs("sudo -u root -E rm x").at(-1), ["rm", "x"]);
    assert.deepEqual(argvs("sudo -Eu root rm x").at(-1), ["rm", "x"]);
    assert.deepEqual(argvs("sudo --user=root -- rm x").at(-1), ["rm", "x"]);
    assert.deepEqual(
      argvs("nohup nice -n 5 timeout -s KILL 10s /bin/rm x").map((a) => commandName(a[0]!)),
      ["nohup", "nice", "timeout", "rm"],
    );
    assert.deepEqual(argvs("find / -name '*.log' | xargs -0 -I{} rm {}").at(-1), ["rm", "{}"]);
    assert.deepEqual(argvs("find . -exec rm -f {} \\; -print").at(-1), ["rm", "-f", "{}"]);
    assert.deepEqual(argvs("time -p make"), [["time", "-p", "make"], ["make"]]);
    assert.deepEqual(argvs("exec -a x rm y").at(-1), ["rm", "y"]);
    assert.deepEqual(argvs("busybox rm y").at(-1), ["rm", "y"]);
    assert.deepEqual(argvs("eval 'rm -rf' /").at(-1), ["rm", "-rf", "/"]);
  });

  it("carries env assignments into env-wrapped commands", () => {
    const cmd = analyzeShell("env -i PATH=/x LD_PRELOAD=/tmp/e.so ls");
    assert.deepEqual(cmd.commands[1], { argv: ["ls"], env: { PATH: "/x", LD_PRELOAD: "/tmp/e.so" } });
    assert.deepEqual(argvs("env -S 'rm -rf' /").at(-1), ["rm", "-rf", "/"]);
  });

  it("parses sh -c strings recursively", () => {
    assert.deepEqual(argvs('bash -c "cd / && rm -rf *"'), [
      ["bash", "-c", "cd / && rm -rf *"],
      ["cd", "/"],
      ["rm", "-rf", "*"],
    ]);
    assert.deepEqual(argvs("/bin/sh -lc 'rm x'").at(-1), ["rm", "x"]);
    assert.deepEqual(argvs("sh -xc 'rm x' name arg").at(-1), ["rm", "x"]);
    assert.deepEqual(argvs("bash -o pipefail -c -- 'rm x'").at(-1), ["rm", "x"]);
    assert.deepEqual(
      argvs("sudo sh -c 'echo $(id)'").map((a) => a[0]),
      ["sudo", "sh", "id", "echo"],
    );
    assert.deepEqual(argvs("su - root -c 'rm x'").at(-1), ["rm", "x"]);
    assert.deepEqual(
      argvs("bash script.sh -c x"),
      [["bash", "script.sh", "-c", "x"]],
      "-c after the script is its argument",
    );
  });

  it("keeps quoted text as arguments, not commands", () => {
    assert.deepEqual(argvs("echo 'rm -rf /'"), [["echo", "rm -rf /"]]);
    assert.deepEqual(argvs('echo "a  b" c\\ d \'e\'"f"'), [["echo", "a  b", "c d", "ef"]]);
    assert.deepEqual(argvs('echo "x\\"y\\$z\\n"'), [["echo", 'x"y$z\\n']]);
    assert.deepEqual(argvs("r\\m -rf /"), [["rm", "-rf", "/"]]);
    assert.deepEqual(argvs("'r'\"m\" x"), [["rm", "x"]]);
    assert.deepEqual(argvs("$'\\x72\\155' x"), [["rm", "x"]], "ANSI-C quoting is decoded");
    assert.deepEqual(argvs("$'rm\\0zz' x"), [["rm", "x"]], "bash truncates at NUL");
    assert.deepEqual(argvs("echo a#b # rm -rf /"), [["echo", "a#b"]]);
  });

  it("parses command substitutions, which run too", () => {
    const cmd = analyzeShell("x=$(rm -rf /)");
    assert.deepEqual(cmd.commands, [{ argv: ["rm", "-rf", "/"], env: {} }]);
    assert.deepEqual(argvs('echo `whoami` "$(id -u)"'), [["whoami"], ["id", "-u"], ["echo", "`whoami`", "$(id -u)"]]);
    assert.deepEqual(
      argvs("echo ${X:-$(rm a)}").map((a) => a[0]),
      ["rm", "echo"],
    );
    assert.deepEqual(
      argvs("echo $((1 + $(rm b)))").map((a) => a[0]),
      ["rm", "echo"],
    );
    assert.deepEqual(argvs("echo $((1+2))"), [["echo", "$((1+2))"]]);
    assert.deepEqual(
      argvs("diff <(ls a) >(tee b)").map((a) => a[0]),
      ["ls", "tee", "diff"],
    );
    assert.deepEqual(
      argvs("echo `echo \\`rm c\\``").map((a) => a[0]),
      ["rm", "echo", "echo"],
    );
  });

  it("flattens pipelines, lists, subshells and groups", () => {
    assert.deepEqual(argvs("cat f | sh"), [["cat", "f"], ["sh"]]);
    assert.deepEqual(argvs("a && b || c; d & e |& f\ng"), [["a"], ["b"], ["c"], ["d"], ["e"], ["f"], ["g"]]);
    assert.deepEqual(argvs("(cd /tmp; rm x) && { ls; rm y; }"), [["cd", "/tmp"], ["rm", "x"], ["ls"], ["rm", "y"]]);
    assert.deepEqual(argvs("if rm a; then rm b; else rm c; fi"), [
      ["rm", "a"],
      ["rm", "b"],
      ["rm", "c"],
    ]);
    assert.deepEqual(argvs("while true; do rm d; done"), [["true"], ["rm", "d"]]);
    assert.deepEqual(argvs("f() { rm e; }; function g { rm h; }"), [
      ["rm", "e"],
      ["rm", "h"],
    ]);
    assert.deepEqual(argvs("! rm x"), [["rm", "x"]]);
  });

  it("expands braces in unquoted words", () => {
    assert.deepEqual(argvs("{rm,-rf,/}"), [["rm", "-rf", "/"]]);
    assert.deepEqual(argvs("{r..r}m x"), [["rm", "x"]]);
    assert.deepEqual(argvs("rm -rf /{etc,usr/{bin,lib}} f{1..3} cp{,.bak}"), [
      ["rm", "-rf", "/etc", "/usr/bin", "/usr/lib", "f1", "f2", "f3", "cp", "cp.bak"],
    ]);
    assert.deepEqual(argvs("echo '{a,b}' {a} {} x{y"), [["echo", "{a,b}", "{a}", "{}", "x{y"]]);
    assert.match(analyzeShell("echo " + "{a,b}".repeat(20)).parseError ?? "", /brace expansion too large/);
    assert.match(analyzeShell("echo {1..1000000}").parseError ?? "", /brace expansion too large/);
    assert.ok(analyzeShell("echo " + "{".repeat(100_000) + "}").parseError);
  });

  it("moves leading assignments into env", () => {
    const cmd = analyzeShell("FOO='a b' BAR=$HOME cmd X=1");
    assert.deepEqual(cmd.commands, [{ argv: ["cmd", "X=1"], env: { FOO: "a b", BAR: "$HOME" } }]);
    assert.deepEqual(analyzeShell('"A=1" cmd').commands[0]!.argv, ["A=1", "cmd"], "a quoted name is no assignment");
    assert.deepEqual(analyzeShell("arr=(a 'b c') ls").commands[0]!.env, { arr: "(a b c)" });
  });

  it("drops redirections from argv", () => {
    assert.deepEqual(argvs("cmd > out 2>&1 < in >> log &> all 2>/dev/null arg"), [["cmd", "arg"]]);
    assert.deepEqual(argvs("cmd >|x <>y 3<&0 &>>z <<< 'here'"), [["cmd"]]);
    assert.deepEqual(argvs("echo 2 >x"), [["echo", "2"]], "a separated number is an argument");
    assert.deepEqual(
      argvs("cat > $(rm q)").map((a) => a[0]),
      ["rm", "cat"],
    );
  });

  it("skips heredoc bodies but runs their substitutions when the delimiter is unquoted", () => {
    assert.deepEqual(argvs("cat <<EOF\nrm -rf /\nEOF\nls"), [["cat"], ["ls"]]);
    assert.deepEqual(
      argvs("cat <<-EOF\n\t$(rm a)\n\tEOF\nls").map((a) => a[0]),
      ["cat", "rm", "ls"],
    );
    assert.deepEqual(argvs("cat <<'EOF'\n$(rm a)\nEOF"), [["cat"]]);
  });

  it("reports unbalanced quoting as a parse error", () => {
    for (const line of [
      "echo 'abc",
      'echo "abc',
      "echo `abc",
      "echo $(ls",
      "(ls",
      "ls )",
      "echo ${x",
      "cat >",
      "$'abc",
    ]) {
      assert.ok(analyzeShell(line).parseError, line);
    }
  });

  it("limits nesting depth", () => {
    const nest = (n: number): string => "echo " + "$(echo ".repeat(n) + "x" + ")".repeat(n);
    assert.equal(analyzeShell(nest(7)).parseError, undefined);
    assert.match(analyzeShell(nest(9)).parseError ?? "", /nesting deeper than 8/);
    assert.ok(analyzeShell("(".repeat(100_000)).parseError);
    let line = "rm x";
    for (let i = 0; i < 10; i++) line = `sh -c ${"'" + line.replaceAll("'", "'\\''") + "'"}`;
    assert.match(analyzeShell(line).parseError ?? "", /nesting/);
    assert.ok(analyzeShell("sudo ".repeat(20) + "rm").parseError);
  });

  it("is linear on long adversarial input", () => {
    const started = performance.now();
    analyzeShell("a".repeat(200_000));
    analyzeShell("'".repeat(100_001));
    analyzeShell("$".repeat(100_000) + "{");
    analyzeShell("echo " + "\\\\".repeat(100_000));
    analyzeShell("a | ".repeat(20_000) + "b");
    assert.ok(performance.now() - started < 1000);
  });

  it("commandName is the basename", () => {
    assert.equal(commandName("/usr/bin/rm"), "rm");
    assert.equal(commandName("rm"), "rm");
    assert.equal(commandName("./x/"), "");
  });
});
