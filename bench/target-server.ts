// The benchmark's targets, in a process of their own so that "direct" crosses a process boundary
// just as the path through Vigil does: an echo server and a source that sends `bytes` from one buffer.
import { createServer } from "node:net";

const bytes = Number(process.argv[2] ?? 1024 ** 3);
const chunk = Buffer.alloc(1 << 20, 0x5a);

const echo = createServer({ noDelay: true, allowHalfOpen: true }, (s) => s.pipe(s));
const blast = createServer((s) => {
  let left = bytes;
  const write = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once("drain", write);
    }
    s.end();
  };
  s.on("error", () => {});
  write();
});

await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
await new Promise<void>((r) => blast.listen(0, "127.0.0.1", r));
const port = (s: typeof echo) => (s.address() as { port: number }).port;
process.stdout.write(JSON.stringify({ echo: port(echo), blast: port(blast) }) + "\n");
process.on("SIGTERM", () => process.exit(0));
