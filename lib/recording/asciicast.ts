import { Stream, type RecordingEvent } from "../../proto/gen/vigil/v1/recording.js";

/** Terminal size when a recording has no resize event (an exec without a pty). */
const DEFAULT_SIZE = { cols: 80, rows: 24 };

/**
 * A session's recording as asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/), which
 * `asciinema play` replays: a header line with the terminal size from the first resize and the start
 * time, then one `[seconds, "o", text]` line per recorded output (terminal, stdout and stderr, as
 * masked for the record) and `[seconds, "r", "COLSxROWS"]` per later window change. Times are
 * relative to the session's first event.
 */
export function toAsciicast(events: readonly RecordingEvent[]): string {
  const first = events[0];
  const startUs = first ? Number(first.timeUs) : 0;
  const firstResize = events.find((e) => e.body?.$case === "resize");
  const size = firstResize?.body?.$case === "resize" ? firstResize.body.value : DEFAULT_SIZE;
  const header = {
    version: 2,
    width: size.cols,
    height: size.rows,
    timestamp: Math.floor(startUs / 1e6),
    ...(first ? { title: `vigil session ${first.sessionId}` } : {}),
  };
  const lines = [JSON.stringify(header)];
  for (const e of events) {
    const t = Math.max(0, Number(e.timeUs) - startUs) / 1e6;
    const body = e.body;
    if (body?.$case === "output" && body.value.stream !== Stream.STREAM_INPUT) {
      lines.push(JSON.stringify([t, "o", body.value.data]));
    } else if (body?.$case === "resize" && e !== firstResize) {
      lines.push(JSON.stringify([t, "r", `${body.value.cols}x${body.value.rows}`]));
    }
  }
  return lines.join("\n") + "\n";
}
