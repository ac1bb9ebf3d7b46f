import { StringDecoder } from "node:string_decoder";
import type { Masker } from "../../../../lib/masking/masker.js";
import { Stream } from "../../../../proto/gen/vigil/v1/recording.js";
import type { SessionRecording } from "../../recording/recorder.js";

/** Output is gathered this long, or up to this many bytes, per recorded event: never one event per byte. */
const FLUSH_MS = 5;
const FLUSH_BYTES = 32 * 1024;

type OutputStream = Stream.STREAM_OUTPUT | Stream.STREAM_STDERR;

/**
 * Terminal and stdout/stderr bytes of one channel on their way into the recording: coalesced into
 * events of a few milliseconds or 32 KiB, decoded as UTF-8 without splitting a character, and
 * masked for the record. A burst keeps one stream's order; stdout and stderr are two buffers. Once
 * a stream carries a NUL byte it is binary (a file through `cat` or `tar`): its size is recorded, not
 * its bytes.
 */
export class OutputLog {
  private readonly pending = new Map<OutputStream, { chunks: Buffer[]; bytes: number; decoder: StringDecoder }>();
  /** Bytes of binary output per stream (a NUL byte seen): counted, not recorded as text. */
  private readonly binary = new Map<OutputStream, number>();
  private timer: NodeJS.Timeout | undefined;
  /** The command the output belongs to (an exec, the current shell line). */
  command = 0;

  constructor(
    private readonly recording: SessionRecording,
    private readonly masker: () => Masker | undefined,
  ) {}

  write(stream: OutputStream, data: Buffer): void {
    const binary = this.binary.get(stream);
    if (binary !== undefined || data.includes(0)) {
      // Terminals never show NUL: this is a file going through (cat, tar), not text for a person.
      if (binary === undefined) this.flush();
      this.binary.set(stream, (binary ?? 0) + data.length);
      return;
    }
    let p = this.pending.get(stream);
    if (!p) this.pending.set(stream, (p = { chunks: [], bytes: 0, decoder: new StringDecoder("utf8") }));
    p.chunks.push(data);
    p.bytes += data.length;
    if (p.bytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Record what is buffered now (before a command event, at exit), so events stay in order. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [stream, p] of this.pending) {
      if (p.bytes === 0) continue;
      const text = p.decoder.write(p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks));
      p.chunks = [];
      p.bytes = 0;
      if (text) this.record(stream, text);
    }
  }

  /** Flush, including a trailing incomplete character. */
  end(): void {
    this.flush();
    for (const [stream, p] of this.pending) {
      const rest = p.decoder.end();
      if (rest) this.record(stream, rest);
    }
    this.pending.clear();
    for (const [stream, bytes] of this.binary) {
      this.record(stream, `[vigil: ${bytes} bytes of binary output, not recorded as text]\r\n`);
    }
    this.binary.clear();
  }

  private record(stream: OutputStream, text: string): void {
    const data = this.masker()?.maskText(text).text ?? text;
    this.recording.record({ $case: "output", value: { command: this.command, stream, data } });
  }
}
