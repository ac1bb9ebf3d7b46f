import { createWriteStream, writeFileSync } from "node:fs";
import type { Command } from "commander";
import type { EventView } from "../../lib/recording/view.js";
import { apiLines, apiRequest, apiText } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface SessionSummary {
  id: string;
  user: string;
  connection: string;
  connectionType: string;
  segment: string;
  relayId: string;
  clientAddress: string;
  startedAt: string;
  endedAt?: string;
  commands: number;
  denied: boolean;
  reviewed: boolean;
  errors: number;
  endError?: string;
  running: boolean;
}

interface ReplayOptions {
  json?: boolean;
  realtime?: boolean;
  speed: string;
  asciicast?: string;
}

interface SearchOptions {
  user?: string;
  group?: string;
  connection?: string;
  segment?: string;
  type?: string;
  from?: string;
  to?: string;
  q?: string;
  decision?: string;
  hasApproval?: boolean;
  sort?: string;
  limit?: string;
  all?: boolean;
  json?: boolean;
}

/** `vigil sessions`, `vigil replay`, `vigil verify`, `vigil export`: forensic search over recordings. */
export function recordingCommands(program: Command): void {
  const sessions = program.command("sessions").description("search and show recorded sessions across the fleet");
  withClientOptions(
    sessions
      .command("search", { isDefault: true })
      .description("find sessions: by who, where, when and what they ran (newest first)"),
  )
    .option("--user <subject>", "who ran the session")
    .option("--group <group>", "a group the user was in")
    .option("--connection <name>", "connection name")
    .option("--segment <segment>", "network segment of the relay")
    .option("--type <type>", "postgres, ssh, http, kubernetes or tcp")
    .option("--from <time>", "sessions active at or after (ISO 8601, or e.g. 2h for two hours ago)")
    .option("--to <time>", "sessions active at or before (ISO 8601, or e.g. 30m)")
    .option("-q, --q <words>", "words that must all appear in one command of the session")
    .option("--decision <d>", "sessions with at least one command decided allow, deny or review")
    .option("--has-approval", "only sessions with an approval step")
    .option("--sort <order>", "desc (newest first) or asc", "desc")
    .option("--limit <n>", "sessions per page (max 500)", "50")
    .option("--all", "follow every page")
    .option("--json", "print JSON, one session per line")
    .action(async (opts: SearchOptions, cmd: Command) => {
      const client = clientOptions(cmd);
      const query = searchQuery(opts);
      let found = 0;
      for (let cursor: string | undefined; ;) {
        if (cursor) query.set("cursor", cursor);
        const page = await apiRequest<{ sessions: SessionSummary[]; next?: string }>(
          client,
          "GET",
          `api/v1/sessions?${query}`,
        );
        for (const s of page.sessions) {
          found++;
          process.stdout.write((opts.json ? JSON.stringify(s) : describeSession(s)) + "\n");
        }
        cursor = page.next;
        if (!cursor || !opts.all) {
          if (cursor && !opts.json) process.stderr.write("more sessions match: add --all to list them\n");
          break;
        }
      }
      if (found === 0 && !opts.json) process.stderr.write("no sessions match\n");
    });

  withClientOptions(sessions.command("show").description("one session's summary").argument("<id>", "session id"))
    .option("--json", "print JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const s = await apiRequest<SessionSummary>(
        clientOptions(cmd),
        "GET",
        `api/v1/sessions/${encodeURIComponent(id)}`,
      );
      process.stdout.write((opts.json ? JSON.stringify(s, null, 2) : describeSession(s)) + "\n");
    });

  withClientOptions(
    program
      .command("replay")
      .description("print a recorded session step by step, with the time of each step")
      .argument("<id>", "session id"),
  )
    .option("--json", "print the events as NDJSON, as recorded")
    .option(
      "--asciicast <file>",
      "write the terminal output as an asciicast v2 file (- for stdout), for asciinema play",
    )
    .option("--realtime", "wait between steps as long as the session did")
    .option("--speed <factor>", "with --realtime: play this many times faster", "1")
    .action(async (id: string, opts: ReplayOptions, cmd: Command) => {
      if (opts.asciicast) {
        const cast = await apiText(
          clientOptions(cmd),
          `api/v1/sessions/${encodeURIComponent(id)}/events?format=asciicast`,
        );
        if (opts.asciicast === "-") process.stdout.write(cast);
        else writeFileSync(opts.asciicast, cast, { mode: 0o600 });
        return;
      }
      const speed = Number(opts.speed);
      if (!(speed > 0)) throw new Error(`--speed must be a positive number (got ${opts.speed})`);
      let startUs: number | undefined;
      let lastUs = 0;
      for await (const e of apiLines<EventView>(
        clientOptions(cmd),
        `api/v1/sessions/${encodeURIComponent(id)}/events`,
      )) {
        startUs ??= e.timeUs;
        if (opts.realtime && lastUs) await sleep((e.timeUs - lastUs) / 1000 / speed);
        lastUs = e.timeUs;
        process.stdout.write((opts.json ? JSON.stringify(e) : describeEvent(e, e.timeUs - startUs)) + "\n");
      }
      if (startUs === undefined) throw new Error(`session ${id} has no recorded events`);
    });

  withClientOptions(
    program
      .command("verify")
      .description("check a recording's hash chain and its relay's signature; exit 1 if it was altered")
      .argument("<id>", "session id"),
  )
    .option("--json", "print the hub's answer as JSON")
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const r = await apiRequest<{ ok: boolean; events: number; relayId: string; seq?: number; reason?: string }>(
        clientOptions(cmd),
        "GET",
        `api/v1/sessions/${encodeURIComponent(id)}/verify`,
      );
      if (opts.json) process.stdout.write(JSON.stringify(r) + "\n");
      else if (r.ok) process.stdout.write(`ok: ${r.events} events, chain intact, signed by relay ${r.relayId}\n`);
      else process.stdout.write(`FAILED at seq ${r.seq}: ${r.reason}\n`);
      if (!r.ok) process.exitCode = 1;
    });

  withClientOptions(
    program
      .command("export")
      .description("every recorded event in a time range as NDJSON, for a SIEM (admins)")
      .requiredOption("--from <time>", "start (ISO 8601, or e.g. 24h for a day ago)")
      .requiredOption("--to <time>", "end (ISO 8601, or e.g. 0s for now)", "0s"),
  )
    .option("--out <file>", "write to a file instead of stdout")
    .action(async (opts: { from: string; to: string; out?: string }, cmd: Command) => {
      const query = new URLSearchParams({ from: when(opts.from), to: when(opts.to) });
      const file = opts.out ? createWriteStream(opts.out, { mode: 0o600 }) : undefined;
      const out: NodeJS.WritableStream = file ?? process.stdout;
      let n = 0;
      for await (const e of apiLines<EventView>(clientOptions(cmd), `api/v1/export?${query}`)) {
        if (!out.write(JSON.stringify(e) + "\n")) await new Promise<void>((r) => out.once("drain", () => r()));
        n++;
      }
      if (file) {
        await new Promise<void>((r) => file.end(() => r()));
        process.stderr.write(`${n} events written to ${opts.out}\n`);
      }
    });
}

function searchQuery(opts: SearchOptions): URLSearchParams {
  const q = new URLSearchParams();
  for (const key of ["user", "group", "connection", "segment", "type", "q", "decision", "sort", "limit"] as const) {
    const v = opts[key];
    if (v) q.set(key, v);
  }
  if (opts.from) q.set("from", when(opts.from));
  if (opts.to) q.set("to", when(opts.to));
  if (opts.hasApproval) q.set("hasApproval", "true");
  return q;
}

/** An ISO time as given, or a duration ago ("2h", "30m", "7d", "0s") as ISO. */
function when(value: string): string {
  const m = /^(\d+)([smhd])$/.exec(value);
  if (!m) {
    if (Number.isNaN(Date.parse(value))) throw new Error(`not a time: ${value} (ISO 8601, or 30m / 2h / 7d ago)`);
    return new Date(value).toISOString();
  }
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "s" | "m" | "h" | "d"];
  return new Date(Date.now() - Number(m[1]) * unit).toISOString();
}

function describeSession(s: SessionSummary): string {
  const flags = [
    s.running ? "running" : "",
    s.denied ? "denied" : "",
    s.reviewed ? "reviewed" : "",
    s.errors ? `${s.errors} error${s.errors === 1 ? "" : "s"}` : "",
  ]
    .filter(Boolean)
    .join(", ");
  return `${s.id}  ${s.startedAt}  ${s.user} → ${s.connection} (${s.connectionType}, ${s.segment})  ${s.commands} commands${flags ? `  [${flags}]` : ""}`;
}

/** One line per step: offset from the start, then what happened. */
export function describeEvent(e: EventView, offsetUs: number): string {
  const t = `+${(offsetUs / 1e6).toFixed(3)}s`.padStart(10);
  const f = e as Record<string, unknown>;
  switch (e.type) {
    case "session_start":
      return `${t}  ${f.user} connected to ${f.connection} (${f.connectionType}, segment ${f.segment}, relay ${f.relayId}) from ${f.clientAddress}`;
    case "command":
      return `${t}  #${f.command} ${f.decision}${f.rule ? ` (${f.rule})` : ""}: ${f.text}`;
    case "result": {
      const err = f.error as { code: string; message: string } | undefined;
      const what = err
        ? `error ${err.code}: ${err.message}`
        : `${f.tag || "ok"}${f.exitStatus !== undefined ? ` exit ${f.exitStatus}` : ""}`;
      return `${t}  #${f.command} → ${what} (${f.rows ?? 0} rows, ${f.durationMs} ms)`;
    }
    case "approval":
      return `${t}  #${f.command} approval ${f.approvalId}: ${f.status}${f.message ? ` (${f.message})` : ""}`;
    case "output":
      return `${t}  ${f.stream}: ${JSON.stringify(f.data)}`;
    case "session_end":
      return `${t}  session ended${f.error ? `: ${f.error}` : ""} (${f.commands ?? 0} commands)`;
    default:
      return `${t}  ${e.type} ${JSON.stringify(Object.fromEntries(Object.entries(f).filter(([k]) => !["session", "seq", "time", "timeUs", "type", "hash"].includes(k))))}`;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.min(ms, 10_000)));
