import { mkdirSync, readdirSync, statSync } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";

/**
 * A bounded, append-only queue of records on the relay's disk, kept while NATS is unreachable.
 *
 * Records go into numbered segment files (`00000000000000000001.spool`, …), each record as
 * `[u32 length][u32 crc32 of the payload][payload]` (big-endian). Appends are gathered and written
 * with one write + fdatasync per batch (group commit); `sync()` resolves once everything appended
 * before it is durable. The reader walks the segments oldest first and only sees durable records;
 * fully read and released segments are deleted.
 *
 * After a crash the last segment may end in a torn record (length or crc do not match): the reader
 * stops at it and moves on to the next segment. A new process never appends to an old segment.
 */

/** Where a record starts, or where reading resumes: segment number and byte offset in it. */
export interface SpoolCursor {
  segment: number;
  offset: number;
}

export interface SpoolRecord {
  payload: Buffer;
  /** Where this record starts (to read it again after a failed publish). */
  at: SpoolCursor;
  /** Where the next record starts (once this one is acked, everything before it can go). */
  next: SpoolCursor;
}

export interface SpoolOptions {
  /** Appends that would take the files beyond this many bytes are refused. */
  maxBytes: number;
  /** A segment is closed and a new one started once it holds this many bytes. */
  segmentBytes?: number;
  /** Called for each torn or corrupt record found while reading (it and its segment's rest are skipped). */
  onCorrupt?: (file: string, offset: number, reason: string) => void;
}

const HEADER = 8;
const SUFFIX = ".spool";
const READ_CHUNK = 1 << 20;
/** Segments small enough that a draining spool frees room early, large enough to be few files. */
const defaultSegmentBytes = (maxBytes: number): number =>
  Math.min(64 << 20, Math.max(64 << 10, Math.floor(maxBytes / 16)));

interface Segment {
  n: number;
  /** Bytes in the file that are durable (written and fdatasync'd); the reader stops here. */
  durable: number;
}

export class Spool {
  private readonly segments: Segment[] = [];
  private readonly segmentBytes: number;
  /** The segment appends go to, opened lazily on the first append. */
  private writer: { seg: Segment; fh: FileHandle } | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private appended = 0;
  private synced = 0;
  private syncWaiters: { upTo: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private cursor: SpoolCursor;
  private failure: Error | undefined;
  /** Bytes in segment files plus appends not yet written. */
  private size = 0;
  /** Number of the next segment file: names are never reused within a process. */
  private nextSegment: number;

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
  ) {
    this.segmentBytes = Math.max(
      1,
      Math.min(options.segmentBytes ?? defaultSegmentBytes(options.maxBytes), options.maxBytes),
    );
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(dir)
      .filter((f) => /^\d{20}\.spool$/.test(f))
      .sort()) {
      const durable = statSync(join(dir, name)).size;
      this.segments.push({ n: Number(name.slice(0, 20)), durable });
      this.size += durable;
    }
    this.nextSegment = (this.segments[this.segments.length - 1]?.n ?? 0) + 1;
    this.cursor = { segment: this.segments[0]?.n ?? this.nextSegment, offset: 0 };
  }

  /** Opens the spool in `dir`, picking up the segments a previous process left. */
  static open(dir: string, options: SpoolOptions): Spool {
    return new Spool(dir, options);
  }

  /** Bytes the spool holds on disk and in its write buffer. */
  get bytes(): number {
    return this.size;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** The disk error that stopped appends, if any. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** True when every appended record has been read (and nothing waits to be written). */
  get drained(): boolean {
    if (this.pending.length > 0 || this.flushing) return false;
    const last = this.segments[this.segments.length - 1];
    if (!last) return true;
    return this.cursor.segment > last.n || (this.cursor.segment === last.n && this.cursor.offset >= last.durable);
  }

  /**
   * Queue a record for the next batched write. False (and nothing kept) when it would exceed
   * maxBytes or the disk failed earlier: the caller decides what losing it means.
   */
  append(payload: Uint8Array): boolean {
    const bytes = HEADER + payload.length;
    if (this.failure || this.size + bytes > this.options.maxBytes) return false;
    const rec = Buffer.allocUnsafe(bytes);
    rec.writeUInt32BE(payload.length, 0);
    rec.writeUInt32BE(crc32(payload), 4);
    rec.set(payload, HEADER);
    this.pending.push(rec);
    this.pendingBytes += bytes;
    this.size += bytes;
    this.appended++;
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
    return true;
  }

  /** Resolves once everything appended so far is durable; rejects when the disk failed. */
  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.synced >= this.appended) return Promise.resolve();
    return new Promise((resolve, reject) => this.syncWaiters.push({ upTo: this.appended, resolve, reject }));
  }

  /**
   * Up to `max` durable records from the read position on, oldest first; advances the position.
   * An empty answer means there is nothing durable left to read right now.
   */
  async read(max: number): Promise<SpoolRecord[]> {
    const out: SpoolRecord[] = [];
    while (out.length < max) {
      const seg = this.segments.find((s) => s.n >= this.cursor.segment);
      if (!seg) break;
      if (seg.n !== this.cursor.segment) this.cursor = { segment: seg.n, offset: 0 };
      if (this.cursor.offset >= seg.durable) {
        // The last segment may still grow; an older one is done.
        if (seg === this.segments[this.segments.length - 1]) break;
        this.cursor = { segment: seg.n + 1, offset: 0 };
        continue;
      }
      const before = this.cursor;
      await this.readChunk(seg, max - out.length, out);
      if (this.cursor === before) break;
    }
    return out;
  }

  /** Read again from `at` (a record whose publish failed, and everything after it). */
  rewind(at: SpoolCursor): void {
    this.cursor = { ...at };
  }

  /** Everything before `upTo` is safely elsewhere: delete the segments that lie wholly before it. */
  release(upTo: SpoolCursor): Promise<void> {
    const gone: Segment[] = [];
    while (this.segments[0] && this.segments[0].n < upTo.segment && this.segments[0] !== this.writer?.seg) {
      gone.push(this.segments.shift()!);
    }
    return this.remove(gone);
  }

  /**
   * Every record was read and is safely elsewhere: forget all segments (their files are removed in
   * the background; new appends go to a new segment, and an earlier disk error is forgotten: a full
   * disk may have room again). Only when `drained`.
   */
  clear(): Promise<void> {
    if (!this.drained) throw new Error("spool: clear() while records are unread");
    this.failure = undefined;
    const writer = this.writer;
    this.writer = undefined;
    const gone = this.segments.splice(0);
    this.cursor = { segment: this.nextSegment, offset: 0 };
    const removed = this.remove(gone);
    return Promise.all([writer?.fh.close(), removed]).then(() => {});
  }

  /** The room is free at once; the files go in the background. */
  private remove(gone: Segment[]): Promise<void> {
    for (const seg of gone) this.size -= seg.durable;
    return Promise.all(gone.map((seg) => rm(join(this.dir, fileName(seg.n)), { force: true }))).then(() => {});
  }

  /** Write what is buffered and close the current segment; the files stay for the next process. */
  async close(): Promise<void> {
    await this.flushing;
    await this.writer?.fh.close();
    this.writer = undefined;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.failure) {
        const upTo = this.appended;
        const records = this.pending;
        this.pending = [];
        this.pendingBytes = 0;
        try {
          // Fill the current segment, then go on in a new one: a segment never outgrows segmentBytes
          // (unless one record alone does), so drained segments can be deleted early.
          let i = 0;
          while (i < records.length) {
            const w = await this.segmentFor(records[i]!.length);
            let bytes = 0;
            let j = i;
            while (j < records.length && (j === i || w.seg.durable + bytes + records[j]!.length <= this.segmentBytes)) {
              bytes += records[j++]!.length;
            }
            await this.writeDurably(w, Buffer.concat(records.slice(i, j), bytes));
            i = j;
          }
        } catch (err) {
          this.fail(err as Error);
          return;
        }
        this.synced = upTo;
        const ready = this.syncWaiters.filter((w) => w.upTo <= upTo);
        this.syncWaiters = this.syncWaiters.filter((w) => w.upTo > upTo);
        for (const w of ready) w.resolve();
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** The segment to write a record of `bytes` to: the current one while it has room, else a new one. */
  private async segmentFor(bytes: number): Promise<{ seg: Segment; fh: FileHandle }> {
    const w = this.writer;
    if (w && (w.seg.durable === 0 || w.seg.durable + bytes <= this.segmentBytes)) return w;
    if (w) {
      this.writer = undefined;
      await w.fh.close();
    }
    const seg: Segment = { n: this.nextSegment++, durable: 0 };
    const fh = await open(join(this.dir, fileName(seg.n)), "wx", 0o600);
    await syncDir(this.dir); // the new file's name must survive a crash too
    this.segments.push(seg);
    return (this.writer = { seg, fh });
  }

  private async writeDurably(w: { seg: Segment; fh: FileHandle }, batch: Buffer): Promise<void> {
    await w.fh.write(batch, 0, batch.length, w.seg.durable);
    await w.fh.datasync();
    w.seg.durable += batch.length;
  }

  private fail(err: Error): void {
    this.failure = err;
    // What was buffered is lost; take it out of the size so only real files count.
    this.size -= this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    for (const w of this.syncWaiters.splice(0)) w.reject(err);
  }

  /** Parse whole records from the cursor on (one chunk of the segment) and move the cursor past them. */
  private async readChunk(seg: Segment, max: number, out: SpoolRecord[]): Promise<void> {
    const file = join(this.dir, fileName(seg.n));
    const start = this.cursor.offset;
    const end = seg.durable;
    let buf = await readAt(file, start, Math.min(end - start, READ_CHUNK));
    let pos = 0;
    let added = 0;
    while (added < max && pos < buf.length) {
      const torn = (reason: string): void => {
        this.options.onCorrupt?.(file, start + pos, reason);
        // Nothing after a bad record in this segment can be trusted: go on with the next one.
        this.cursor = { segment: seg.n + 1, offset: 0 };
      };
      if (start + pos + HEADER > end) return torn("torn record header at the end of the segment");
      if (pos + HEADER > buf.length) break; // continues in the next chunk
      const len = buf.readUInt32BE(pos);
      if (start + pos + HEADER + len > end) return torn("torn record at the end of the segment");
      if (pos + HEADER + len > buf.length) {
        if (pos > 0) break; // continues in the next chunk
        buf = await readAt(file, start, HEADER + len); // one record larger than a chunk
      }
      const payload = Buffer.from(buf.subarray(pos + HEADER, pos + HEADER + len));
      if (crc32(payload) !== buf.readUInt32BE(pos + 4)) return torn("checksum mismatch");
      const at = { segment: seg.n, offset: start + pos };
      pos += HEADER + len;
      out.push({ payload, at, next: { segment: seg.n, offset: start + pos } });
      added++;
    }
    if (pos > 0) this.cursor = { segment: seg.n, offset: start + pos };
  }
}

async function readAt(file: string, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const fh = await open(file, "r");
  try {
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function fileName(n: number): string {
  return String(n).padStart(20, "0") + SUFFIX;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
