"""Keystroke echo latency of an interactive ssh session, on a real pseudo-terminal.

Usage: python3 ssh-echo.py '<ssh argv as JSON>' <keystrokes> <warm-up keystrokes>
Waits for the shell prompt, then types one key at a time and times how long until the terminal
shows it (the remote line editor's echo). Every 40 keys the line is erased (Ctrl-U) so it never
wraps. Prints {"ms": [latency of each timed keystroke]}.
"""
import fcntl, json, os, pty, re, select, struct, sys, termios, time

argv = json.loads(sys.argv[1])
count, warmup = int(sys.argv[2]), int(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.execvp(argv[0], argv)


def read_until(pred, timeout=10.0):
    buf = b""
    deadline = time.monotonic() + timeout
    while not pred(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit("timed out; output ends with %r" % buf[-200:])
        r, _, _ = select.select([fd], [], [], left)
        if r:
            buf += os.read(fd, 65536)
    return buf


def drain(quiet=0.05):
    while select.select([fd], [], [], quiet)[0]:
        os.read(fd, 65536)


read_until(lambda b: re.search(rb"[#$] $", b) is not None, 30)
drain(0.3)
ms = []
for i in range(warmup + count):
    if i % 40 == 0:
        os.write(fd, b"\x15")
        drain()
    key = b"abcdefghij"[i % 10 : i % 10 + 1]
    t0 = time.perf_counter()
    os.write(fd, key)
    read_until(lambda b: key in b)
    if i >= warmup:
        ms.append((time.perf_counter() - t0) * 1000)
os.write(fd, b"\x15exit\r")
try:
    read_until(lambda b: False, 5)
except (SystemExit, OSError):
    pass
os.waitpid(pid, 0)
print(json.dumps({"ms": ms}))
