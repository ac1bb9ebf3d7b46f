"""Drive a program on a real pseudo-terminal, as a person at a keyboard would.

Usage: python3 pty-driver.py '<argv as JSON>' '<steps as JSON>'
Steps: {"expect": "<regex>"} waits (10 s at most) until the output since the last match matches;
{"send": "<text>"} types it; {"keys": "<text>", "gapMs": N} types it one key at a time; {"resize": [rows, cols]} changes the
terminal's size (the program gets SIGWINCH, as from a window manager); {"signal": "TERM"} signals the
program; {"close": true} hangs up the terminal (as when its window is closed).
Prints one JSON object: {"output": <everything the program wrote>, "status": <exit status>, "error": ...}.
"""
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time

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
    if fd < 0:
        return False
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
    elif "resize" in step:
        rows, cols = step["resize"]
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    elif "signal" in step:
        os.kill(pid, getattr(signal, "SIG" + step["signal"]))
    elif "close" in step:
        os.close(fd)
        fd = -1
        break
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
