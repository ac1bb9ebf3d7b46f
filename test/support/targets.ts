import { createHash } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";

export interface Target {
  port: number;
  address: string;
  /** Sockets currently connected to the target. */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

async function listen(server: Server, sockets: Set<Socket>): Promise<Target> {
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A TCP echo server that also echoes half-close (it ends when the client ends). */
export function echoServer(): Promise<Target> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => s.pipe(s));
  return listen(server, new Set());
}

// 17 distinct 1 MiB blocks, made once; block i is base[i % 17] stamped with i, so a lost, repeated
// or reordered block changes the digest. Cheap enough that the source never limits a transfer.
const BASE_BLOCKS = Array.from({ length: 17 }, (_, i) => xorshiftBlock(i + 1, 1 << 20));

function xorshiftBlock(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let off = 0; off < size; off += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out.writeUInt32LE(x, off);
  }
  return out;
}

/** Deterministic bytes for block i (at most 1 MiB). */
export function patternBlock(i: number, size: number): Buffer {
  const out = Buffer.from(BASE_BLOCKS[i % BASE_BLOCKS.length]!.subarray(0, size));
  if (size >= 8) out.writeBigUInt64LE(BigInt(i), 0);
  return out;
}

/**
 * A server that writes `total` bytes of pattern blocks to every client (respecting backpressure),
 * then ends. `sha256` is the digest of the whole stream, for the reader to compare.
 */
export async function sourceServer(total: number, blockSize = 1 << 20): Promise<Target & { sha256: string }> {
  const blocks = Math.ceil(total / blockSize);
  const hash = createHash("sha256");
  for (let i = 0; i < blocks; i++)
    hash.update(patternBlock(i, blockSize).subarray(0, Math.min(blockSize, total - i * blockSize)));
  const sha256 = hash.digest("hex");
  const server = createServer((s) => {
    let i = 0;
    const write = () => {
      while (i < blocks) {
        const block = patternBlock(i, blockSize).subarray(0, Math.min(blockSize, total - i * blockSize));
        i++;
        if (!s.write(block)) return void s.once("drain", write);
      }
      s.end();
    };
    s.on("error", () => {});
    write();
  });
  return { ...(await listen(server, new Set())), sha256 };
}
