import { RecordingEvent } from "../../lib/recording/chain.js";
import { eventView, type EventView } from "../../lib/recording/view.js";
import { readdirSync, readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import pg from "pg";
import { B, BackendReader, decodeBackendKeyData, decodeErrorFields } from "../../lib/pgwire/backend.js";
import { serializeCancelRequest } from "../../lib/pgwire/frontend.js";
import { testServices } from "../support/env.js";
import { run, type RunResult } from "../support/services.js";
import { eventually } from "../support/vigil.js";

/** A node-postgres client through the hub's postgres front door (TLS, the token as password). */
export async function pgClient(pgPort: number, connection: string, token: string, database = "vigil_t") {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: pgPort,
    user: connection,
    database,
    password: token,
    ssl: { rejectUnauthorized: false },
  });
  await client.connect();
  return client;
}

/** A connection string for psql through the hub. */
export function psqlUrl(pgPort: number, connection: string, database = "vigil_t", sslmode = "require"): string {
  return `host=127.0.0.1 port=${pgPort} user=${connection} dbname=${database} sslmode=${sslmode}`;
}

/** Run psql with the token in PGPASSWORD (never on the command line). */
export function psql(url: string, token: string, args: string[], input?: string): Promise<RunResult> {
  return run("psql", [url, "-X", "-v", "ON_ERROR_STOP=0", ...args], {
    env: { ...process.env, PGPASSWORD: token, PGCONNECT_TIMEOUT: "10" },
    ...(input !== undefined ? { input } : {}),
  });
}

/** Direct admin client to the test PostgreSQL (not through Vigil), for setup and for checking effects. */
export async function direct(database = "vigil_t") {
  const { pg: s } = testServices();
  const client = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database });
  await client.connect();
  return client;
}

/** Wait until the target runs `query` (seen directly in pg_stat_activity, which covers every database). */
export async function runningOnTarget(query: string): Promise<void> {
  await eventually(`"${query}" to run on the target`, async () => {
    const db = await direct("postgres");
    try {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = $1", [query]);
      return rows[0].n > 0 ? true : undefined;
    } finally {
      await db.end();
    }
  });
}

/** Connection credentials the relay uses for the test PostgreSQL. */
export function relayCredentials() {
  const { pg: s } = testServices();
  return { user: s.user, password: s.password, sslmode: "disable" };
}

/** Every event a relay kept on its own disk (it has no NATS to ship to), as `eventView` shows them. */
export function recordings(relayDataDir: string): EventView[] {
  const dir = join(relayDataDir, "recordings");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ndjson"))
    .flatMap((f) =>
      readFileSync(join(dir, f), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => eventView(RecordingEvent.fromJSON(JSON.parse(l)))),
    );
}

/** Wait for the pending command approval of `command` and return its id. */
export async function pendingApproval(api: string, adminToken: string, match: RegExp): Promise<string> {
  return eventually("a pending command approval", async () => {
    const res = await fetch(`${api}/api/v1/approvals?status=pending`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const body = (await res.json()) as { approvals: { id: string; kind: string; command?: string }[] };
    return body.approvals.find((a) => a.kind === "command" && match.test(a.command ?? ""))?.id;
  });
}

/**
 * A hand-driven client: TLS, startup, password; then raw bytes both ways. For what no real client
 * does: malformed frames, pipelines of our own making, and reading every byte the hub sends.
 */
/** A CancelRequest on a new plain connection, as libpq sends it. */
export async function sendCancel(pgPort: number, key: { pid: number; secret: Buffer }): Promise<void> {
  const socket = netConnect({ host: "127.0.0.1", port: pgPort });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  socket.end(serializeCancelRequest(key.pid, key.secret));
  await new Promise<void>((resolve) => socket.once("close", () => resolve()));
}

export class RawClient {
  readonly received: Buffer[] = [];
  /** The BackendKeyData the hub handed out. */
  backendKey: { pid: number; secret: Buffer } = { pid: 0, secret: Buffer.alloc(0) };
  private readonly reader = new BackendReader();
  private waiters: (() => void)[] = [];
  private ended = false;

  private constructor(readonly socket: TLSSocket) {
    socket.on("data", (b: Buffer) => {
      this.received.push(b);
      this.reader.push(b);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("error", () => {});
  }

  static async open(pgPort: number, connection: string, token: string, database = "vigil_t"): Promise<RawClient> {
    const plain = netConnect({ host: "127.0.0.1", port: pgPort });
    await new Promise<void>((resolve, reject) => plain.once("connect", resolve).once("error", reject));
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    plain.write(ssl);
    const answer = await new Promise<Buffer>((resolve) => plain.once("data", resolve));
    if (answer.toString() !== "S") throw new Error(`hub answered SSLRequest with ${answer.toString()}`);
    const socket = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
    const client = new RawClient(socket);
    const params = Buffer.from(`user\0${connection}\0database\0${database}\0\0`);
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8 + params.length, 0);
    startup.writeInt32BE(196608, 4);
    socket.write(Buffer.concat([startup, params]));
    await client.until(B.Authentication);
    client.send(0x70, Buffer.from(`${token}\0`));
    const greeting = await client.until(B.ReadyForQuery);
    const key = greeting.find((m) => m.code === B.BackendKeyData);
    if (key) client.backendKey = decodeBackendKeyData(key.body);
    return client;
  }

  send(type: number, body: Buffer): void {
    const head = Buffer.alloc(5);
    head[0] = type;
    head.writeInt32BE(body.length + 4, 1);
    this.socket.write(Buffer.concat([head, body]));
  }

  /** Messages up to and including the first of type `code`. */
  async until(code: number, timeoutMs = 10_000): Promise<{ code: number; body: Buffer }[]> {
    const got: { code: number; body: Buffer }[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let m = this.reader.next(); m; m = this.reader.next()) {
        got.push({ code: m.code, body: Buffer.from(m.body) });
        if (m.code === code) return got;
      }
      if (this.ended) throw new Error(`connection closed before message ${String.fromCharCode(code)}`);
      if (Date.now() > deadline) throw new Error(`no message ${String.fromCharCode(code)} in time`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }

  errorOf(messages: { code: number; body: Buffer }[]): Record<string, string> | undefined {
    const e = messages.find((m) => m.code === B.ErrorResponse);
    return e ? decodeErrorFields(e.body) : undefined;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Drop and create `name` on the test PostgreSQL, then run `setup` in it (directly, not through Vigil). */
export async function freshDatabase(name: string, setup: string): Promise<void> {
  const admin = await direct("postgres");
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const db = await direct(name);
  try {
    await db.query(setup);
  } finally {
    await db.end();
  }
}

/** One query run directly against the test PostgreSQL: what really is in the tables. */
export async function directRows<T = Record<string, unknown>>(database: string, sql: string): Promise<T[]> {
  const db = await direct(database);
  try {
    return (await db.query(sql)).rows as T[];
  } finally {
    await db.end();
  }
}
