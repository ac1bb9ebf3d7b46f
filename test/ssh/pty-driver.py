"""Drive a program on a real pseudo-terminal, as a person at a keyboard would.

Usage: python3 pty-driver.py '<argv as JSON>' '<steps as JSON>'
Steps: {"expect": "<regex>"} waits (10 s at most) until the output since the last match matches;
{"send": "<text>"} types it; {"keys": "<text>", "gapMs": N} types it one key at a time.
Prints one JSON object: {"output": <everything the program wrote>, "status": <exit status>, "error": ...}.
"""
import json, os, pty, re, select, sys, time

argv = json.loads(sys.argv[1])
steps = json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)

out = b""
seen = 0
error = None


def read_some(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return True
    try:
        data = os.read(fd, 65536)
    except OSError:
        return False
    if not data:
        return False
    out += data
    return True


for step in steps:
    if "expect" in step:
        pattern = re.compile(step["expect"].encode())
        deadline = time.time() + step.get("timeout", 10)
        while True:
            m = pattern.search(out, seen)
            if m:
                seen = m.end()
                break
            if time.time() > deadline or not read_some(0.05):
                error = "expected %r, output ends with %r" % (step["expect"], out[-300:].decode("utf8", "replace"))
                break
        if error:
            break
    elif "send" in step:
        os.write(fd, step["send"].encode())
    elif "keys" in step:
        for ch in step["keys"]:
            os.write(fd, ch.encode())
            time.sleep(step.get("gapMs", 20) / 1000)

# Read what is left until the program ends.
deadline = time.time() + 10
while time.time() < deadline and read_some(0.2):
    pass
try:
    _, status = os.waitpid(pid, os.WNOHANG if error else 0)
    code = os.waitstatus_to_exitcode(status) if status else 0
except ChildProcessError:
    code = None
if error:
    os.kill(pid, 9)
print(json.dumps({"output": out.decode("utf8", "replace"), "status": code, "error": error}))
