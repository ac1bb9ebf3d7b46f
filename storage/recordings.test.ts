import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { buffer } from "node:stream/consumers";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bodyToJson, verifyChain } from "../lib/recording/chain.js";
import { generateKey } from "../lib/keys.js";
import type { RecordingEvent } from "../proto/gen/vigil/v1/recording.js";
import { openChdb } from "./chdb.js";
import { createClient } from "@clickhouse/client";
import { createChdbConnection } from "chdb/connection";
import { clickHouseExecutor, openClickHouse } from "./clickhouse.js";
import type { Executor } from "./executor.js";
import { currentRetention, loadMigrations, migrate } from "./migrate.js";
import { RecordingStore, type SessionSummary } from "./recordings.js";
import { eventToRow } from "./rows.js";
import { recordSession, type SessionSpec } from "./testing/sessions.js";

const key = generateKey();

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>["connection"]>;

/** Every table the store creates: dropped before each group so each starts from nothing. */
async function reset(db: Executor): Promise<void> {
  for (const table of ["events", "sessions", "schema_migrations"]) await db.exec(`DROP TABLE IF EXISTS ${table}`);
}

async function count(db: Executor, sql: string): Promise<number> {
  const [row] = await db.query<{ n: number | string }>(`SELECT count() AS n FROM ${sql}`);
  return Number(row?.n);
}

const ids = (sessions: SessionSummary[]) => sessions.map((s) => s.id);

/** The store's behaviour, run against each executor. */
function storeTests(title: string, open: () => Promise<{ db: Executor; cleanup: () => Promise<void> }>): void {
  describe(title, function () {
    let db: Executor;
    let cleanup: () => Promise<void>;

    before(async function () {
      ({ db, cleanup } = await open());
    });
    after(async () => cleanup?.());

    describe("migrations", () => {
      before(() => reset(db));

      it("apply every version once, and nothing the second time", async () => {
        const versions = loadMigrations().map((m) => m.version);
        assert.deepEqual((await migrate(db, { retentionDays: 0 })).applied, versions);
        assert.deepEqual((await migrate(db, { retentionDays: 0 })).applied, []);
        assert.equal(await count(db, "schema_migrations FINAL"), versions.length);
      });

      it("survive two processes migrating an empty database at once", async () => {
        await reset(db);
        await Promise.all([migrate(db, { retentionDays: 0 }), migrate(db, { retentionDays: 0 })]);
        assert.equal(await count(db, "schema_migrations FINAL"), loadMigrations().length);
        assert.equal(await count(db, "events"), 0);
      });

      it("set the retention TTL only when it changes, and remove it for 0", async () => {
        assert.equal((await migrate(db, { retentionDays: 30 })).retentionChanged, true);
        assert.equal(await currentRetention(db, "events"), 30);
        assert.equal(await currentRetention(db, "sessions"), 30);
        assert.equal((await migrate(db, { retentionDays: 30 })).retentionChanged, false);
        assert.equal((await migrate(db, { retentionDays: 7 })).retentionChanged, true);
        assert.equal(await currentRetention(db, "events"), 7);
        assert.equal((await migrate(db, { retentionDays: 0 })).retentionChanged, true);
        assert.equal(await currentRetention(db, "events"), 0);
        await assert.rejects(migrate(db, { retentionDays: 1.5 }), /whole number of days/);
      });
    });

    describe("insert, read back and verify", () => {
      let store: RecordingStore;
      const spec: SessionSpec = {
        id: "s-verify",
        user: "alice",
        groups: ["dba", "engineers"],
        segment: "eu",
        // Across an hour boundary: the events table is ordered by hour first.
        start: "2026-03-10T10:59:55Z",
        commands: [
          "SELECT * FROM invoices WHERE id = 7",
          { text: "DROP TABLE invoices", decision: "deny", error: "refused by rule deny-rule" },
          { text: "UPDATE invoices SET paid = true", decision: "review" },
        ],
        endError: "client went away",
      };
      const events = recordSession(spec, key.privateKey);

      before(async () => {
        await reset(db);
        store = await RecordingStore.open(db, { retentionDays: 0 });
        assert.deepEqual(await store.insertEvents(events), { inserted: events.length, skipped: 0 });
      });

      it("reads a session back in order, and its chain and signature verify", async () => {
        const back = await store.sessionEvents(spec.id);
        assert.deepEqual(
          back.map((e) => Number(e.seq)),
          events.map((_, i) => i),
        );
        assert.equal(back[0]!.time, "2026-03-10T10:59:55.000000Z");
        assert.equal(back.at(-1)!.time, "2026-03-10T11:00:04.000000Z");
        assert.deepEqual(verifyChain(back, key.publicRaw), { ok: true, events: events.length });
        assert.deepEqual(await store.verifySession(spec.id, key.publicRaw), { ok: true, events: events.length });
        assert.equal(verifyChain(back, generateKey().publicRaw).ok, false, "another relay's key does not verify");
      });

      it("pages a session's events with afterSeq and limit", async () => {
        const page = await store.sessionEvents(spec.id, { afterSeq: 2, limit: 3 });
        assert.deepEqual(
          page.map((e) => Number(e.seq)),
          [3, 4, 5],
        );
      });

      it("summarises the session", async () => {
        const s = await store.getSession(spec.id);
        assert.ok(s);
        assert.deepEqual(s, {
          id: "s-verify",
          user: "alice",
          groups: ["dba", "engineers"],
          connection: "pg-orders",
          connectionType: "postgres",
          segment: "eu",
          relayId: "relay-eu",
          hubId: "hub-1",
          clientAddress: "10.0.0.7:50123",
          target: "db.internal:5432",
          params: { database: "orders" },
          startedAt: "2026-03-10T10:59:55.000000Z",
          endedAt: "2026-03-10T11:00:04.000000Z",
          commands: 3,
          denied: true,
          reviewed: true,
          errors: 1,
          endError: "client went away",
          lastSeq: events.length - 1,
          running: false,
        });
        assert.equal(await store.getSession("nope"), undefined);
      });

      it("replays a session whose summary is missing (written after a crash), only slower", async () => {
        const id = "s-no-summary";
        const orphan = recordSession({ ...spec, id }, key.privateKey);
        await db.insert("events", orphan.map(eventToRow));
        assert.equal(await store.getSession(id), undefined);
        assert.deepEqual(verifyChain(await store.sessionEvents(id), key.publicRaw), {
          ok: true,
          events: orphan.length,
        });
        await db.exec("ALTER TABLE events DELETE WHERE session_id = {id:String} SETTINGS mutations_sync = 2", { id });
      });

      it("a batch delivered twice stores nothing new and counts nothing twice", async () => {
        assert.deepEqual(await store.insertEvents(events), { inserted: 0, skipped: events.length });
        // Half old, half new, and one event twice in the same batch.
        const other = recordSession({ ...spec, id: "s-other" }, key.privateKey);
        const mixed = [...events.slice(2), ...other, other[0]!];
        assert.deepEqual(await store.insertEvents(mixed), { inserted: other.length, skipped: events.length - 2 + 1 });
        assert.equal(await count(db, "events"), events.length + other.length);
        const s = await store.getSession(spec.id);
        assert.equal(s?.commands, 3);
        assert.equal(s?.errors, 1);
        assert.equal((await store.searchSessions({ user: "alice" })).sessions.length, 2);
      });

      it("a duplicate that raced past the check is never visible, and merges away", async () => {
        // Two ingest workers inserting the same batch at once: both pass the check.
        await db.insert("events", events.slice(0, 4).map(eventToRow));
        assert.equal(await count(db, "events"), events.length * 2 + 4);
        const back = await store.sessionEvents(spec.id);
        assert.equal(back.length, events.length);
        assert.equal(verifyChain(back, key.publicRaw).ok, true);
        const hits = await store.searchEvents({ q: "invoices", user: "alice" });
        assert.equal(hits.events.filter((h) => h.sessionId === spec.id).length, 3);
        await db.exec("OPTIMIZE TABLE events FINAL");
        assert.equal(await count(db, "events"), events.length * 2);
      });

      it("a first delivery stores without the lookup, each event once, whatever its characters", async () => {
        // Words in three scripts, and one command of ~1.5 MB: the insert payload grows past its
        // first buffer, and line boundaries hold for multi-byte characters.
        const id = "s-first-delivery";
        const fresh = recordSession(
          {
            ...spec,
            id,
            user: "zoë",
            commands: [
              "SELECT * FROM façade WHERE straße = 'größe' /* 請求書 😀 */",
              `SELECT '${"é".repeat(500_000)}'`,
            ],
          },
          key.privateKey,
        );
        // A re-publish after JetStream's duplicate window: the same event twice in one first delivery.
        const batch = [...fresh, fresh[1]!];
        assert.deepEqual(await store.insertEvents(batch, { mayBeStored: false }), {
          inserted: fresh.length,
          skipped: 1,
        });
        assert.deepEqual(await store.verifySession(id, key.publicRaw), { ok: true, events: fresh.length });
        // Each body is stored as the exact text of bodyToJson.
        const bodies = await db.query<{ body: string }>(
          "SELECT body FROM events WHERE session_id = {id:String} ORDER BY seq",
          { id },
        );
        assert.deepEqual(
          bodies.map((r) => r.body),
          fresh.map((e) => bodyToJson(e.body!)),
        );
        const hits = await store.searchEvents({ q: "größe", user: "zoë" });
        assert.deepEqual(
          hits.events.map((h) => [h.sessionId, h.seq]),
          [[id, 1]],
        );
        // Redelivered, it is looked up and skipped.
        assert.deepEqual(await store.insertEvents(fresh), { inserted: 0, skipped: fresh.length });
        await db.exec("ALTER TABLE events DELETE WHERE session_id = {id:String} SETTINGS mutations_sync = 2", { id });
      });

      it("an altered body fails verification at that event", async () => {
        const seq = 3; // DROP TABLE invoices
        await db.exec(
          `ALTER TABLE events UPDATE body = replaceOne(body, 'DROP TABLE', 'SELECT FROM')
           WHERE session_id = {id:String} AND seq = {seq:UInt64} SETTINGS mutations_sync = 2`,
          { id: "s-other", seq },
        );
        const result = verifyChain(await store.sessionEvents("s-other"), key.publicRaw);
        assert.equal(result.ok, false);
        assert.equal(!result.ok && result.seq, seq);
        assert.match(!result.ok ? result.reason : "", /altered/);
      });

      it("an altered search column is reported by verifySession", async () => {
        await db.exec(
          `ALTER TABLE events UPDATE decision = 'allow'
           WHERE session_id = {id:String} AND seq = 3 SETTINGS mutations_sync = 2`,
          { id: spec.id },
        );
        const result = await store.verifySession(spec.id, key.publicRaw);
        assert.equal(result.ok, false);
        assert.equal(!result.ok && result.seq, 3);
        assert.match(!result.ok ? result.reason : "", /stored column decision/);
      });

      it("a deleted event is reported as a gap", async () => {
        const id = "s-gap";
        await store.insertEvents(recordSession({ ...spec, id }, key.privateKey));
        await db.exec(
          "ALTER TABLE events DELETE WHERE session_id = {id:String} AND seq = 2 SETTINGS mutations_sync = 2",
          { id },
        );
        const result = verifyChain(await store.sessionEvents(id), key.publicRaw);
        assert.equal(result.ok, false);
        assert.equal(!result.ok && result.seq, 2);
        assert.match(!result.ok ? result.reason : "", /event 2 is missing/);
      });

      it("reports bytes per table", async () => {
        const stats = await store.storageStats();
        const events = stats.tables.find((t) => t.table === "events");
        assert.ok(events && events.rows > 0 && events.compressedBytes > 0 && events.uncompressedBytes > 0);
        assert.ok(stats.tables.some((t) => t.table === "sessions"));
      });
    });

    describe("search", () => {
      let store: RecordingStore;
      const T = "2026-03-10T";
      const sessions: SessionSpec[] = [
        { id: "a-eu", user: "alice", segment: "eu", start: `${T}10:00:00Z`, commands: ["SELECT * FROM Invoices"] },
        {
          id: "a-us",
          user: "alice",
          segment: "us",
          connection: "ssh-bastion",
          connectionType: "ssh",
          start: `${T}11:00:00Z`,
          commands: ["cat /srv/invoices/2026.csv", { text: "rm -rf /srv/invoices", decision: "deny" }],
        },
        {
          id: "a-old",
          user: "alice",
          segment: "eu",
          start: "2026-03-01T10:00:00Z",
          commands: ["SELECT * FROM invoices"],
        },
        { id: "a-other", user: "alice", segment: "eu", start: `${T}10:30:00Z`, commands: ["SELECT 1"] },
        {
          id: "b-eu",
          user: "bob",
          groups: ["dba"],
          segment: "eu",
          start: `${T}10:15:00Z`,
          commands: [{ text: "UPDATE invoices SET paid = true", decision: "review" }],
        },
        // Started before the range and still running: it overlaps.
        {
          id: "a-running",
          user: "alice",
          segment: "us",
          start: `${T}08:00:00Z`,
          commands: ["SELECT total FROM invoices"],
          end: false,
        },
      ];
      const range = { from: `${T}09:00:00Z`, to: `${T}12:00:00Z` };

      before(async () => {
        await reset(db);
        store = await RecordingStore.open(db, { retentionDays: 0 });
        // Each session in two batches: summaries must merge across them.
        const all = sessions.map((s) => recordSession(s, key.privateKey));
        await store.insertEvents(all.flatMap((e) => e.slice(0, 2)));
        await store.insertEvents(all.flatMap((e) => e.slice(2)));
      });

      it("finds a user's sessions in a time range by the words of a command, across segments", async () => {
        const { sessions: found, next } = await store.searchSessions({ user: "alice", ...range, q: "INVOICES" });
        assert.deepEqual(ids(found), ["a-us", "a-eu", "a-running"]);
        assert.equal(next, undefined);
        assert.deepEqual(
          found.map((s) => s.segment),
          ["us", "eu", "us"],
        );
        const running = found[2]!;
        assert.equal(running.running, true);
        assert.equal(running.endedAt, undefined);
        assert.equal(running.user, "alice", "who comes from the first batch, counts from the second");
        assert.equal(running.commands, 1);
      });

      it("filters on every field", async () => {
        const search = async (f: Parameters<RecordingStore["searchSessions"]>[0]) =>
          ids((await store.searchSessions(f)).sessions).sort();
        assert.deepEqual(await search({ segment: "us" }), ["a-running", "a-us"]);
        assert.deepEqual(await search({ type: "ssh" }), ["a-us"]);
        assert.deepEqual(await search({ connection: "ssh-bastion" }), ["a-us"]);
        assert.deepEqual(await search({ group: "dba" }), ["b-eu"]);
        assert.deepEqual(await search({ decision: "deny" }), ["a-us"]);
        assert.deepEqual(await search({ decision: "review" }), ["b-eu"]);
        assert.deepEqual(await search({ hasApproval: true }), ["b-eu"]);
        assert.deepEqual(await search({ q: "invoices paid", user: "bob" }), ["b-eu"]);
        assert.deepEqual(await search({ q: "invoices nothing" }), []);
        assert.deepEqual(await search({ to: "2026-03-02T00:00:00Z" }), ["a-old"]);
        assert.deepEqual(await search({ from: "2026-03-10T10:40:00Z", to: new Date("2026-03-10T12:00:00Z") }), [
          "a-running",
          "a-us",
        ]);
        await assert.rejects(store.searchSessions({ from: "soon" }), /from is not a date/);
        await assert.rejects(
          store.searchSessions({ decision: "maybe" as "allow" }),
          /decision must be allow, deny or review/,
        );
      });

      it("finds commands across the fleet with their session's user and connection", async () => {
        const { events: hits } = await store.searchEvents({ user: "alice", ...range, q: "invoices" });
        assert.deepEqual(
          hits.map((h) => [h.sessionId, h.text]),
          [
            ["a-us", "rm -rf /srv/invoices"],
            ["a-us", "cat /srv/invoices/2026.csv"],
            ["a-eu", "SELECT * FROM Invoices"],
          ],
        );
        assert.deepEqual(
          {
            user: hits[0]!.user,
            connection: hits[0]!.connection,
            segment: hits[0]!.segment,
            decision: hits[0]!.decision,
          },
          { user: "alice", connection: "ssh-bastion", segment: "us", decision: "deny" },
        );
        assert.equal(hits[0]!.event.body?.$case, "command");
        const denied = await store.searchEvents({ decision: "deny" });
        assert.deepEqual(
          denied.events.map((h) => h.text),
          ["rm -rf /srv/invoices"],
        );
      });

      it("pages commands with a cursor", async () => {
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await store.searchEvents({ q: "invoices", limit: 2, sort: "asc", cursor });
          seen.push(...page.events.map((h) => `${h.sessionId}/${h.seq}`));
          cursor = page.next;
        } while (cursor);
        assert.equal(seen.length, 6);
        assert.equal(new Set(seen).size, 6);
      });

      it("exports a time range in (time, session, seq) order, a page at a time", async () => {
        const exported: RecordingEvent[] = [];
        for await (const e of store.exportEvents({ from: `${T}00:00:00Z`, to: `${T}23:59:59Z`, pageSize: 4 })) {
          exported.push(e);
        }
        const expected = sessions
          .filter((s) => s.start.startsWith(T))
          .reduce((n, s) => n + recordSession(s, key.privateKey).length, 0);
        assert.equal(exported.length, expected);
        const keys = exported.map((e) => [e.timeUs, e.sessionId, e.seq] as const);
        const sorted = [...keys].sort((a, b) =>
          a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] !== b[1] ? (a[1] < b[1] ? -1 : 1) : Number(a[2] - b[2]),
        );
        assert.deepEqual(keys, sorted);
        assert.equal(new Set(exported.map((e) => `${e.sessionId}/${e.seq}`)).size, expected);
      });
    });

    describe("paging sessions", () => {
      let store: RecordingStore;
      // 23 sessions, two of them starting at the same microsecond: the id breaks the tie.
      const specs: SessionSpec[] = Array.from({ length: 23 }, (_, i) => ({
        id: `p-${String(i).padStart(2, "0")}`,
        user: "pat",
        segment: i % 2 ? "eu" : "us",
        start: new Date(Date.UTC(2026, 2, 10, 10, Math.min(i, 21))).toISOString(),
        commands: [`SELECT ${i}`],
      }));

      before(async () => {
        await reset(db);
        store = await RecordingStore.open(db, { retentionDays: 0 });
        await store.insertEvents(specs.flatMap((s) => recordSession(s, key.privateKey)));
      });

      for (const sort of ["desc", "asc"] as const) {
        it(`returns every session exactly once, in order (${sort})`, async () => {
          const seen: string[] = [];
          let cursor: string | undefined;
          let pages = 0;
          do {
            const page = await store.searchSessions({ user: "pat", limit: 5, sort, cursor });
            assert.ok(page.sessions.length <= 5);
            seen.push(...ids(page.sessions));
            cursor = page.next;
            pages++;
          } while (cursor);
          assert.equal(pages, 5);
          const expected = specs.map((s) => s.id);
          assert.deepEqual(seen, sort === "asc" ? expected : [...expected].reverse());
        });
      }

      it("stays stable while new sessions arrive", async () => {
        const first = await store.searchSessions({ user: "pat", limit: 10 });
        await store.insertEvents(
          recordSession(
            { id: "p-new", user: "pat", segment: "eu", start: "2026-03-10T12:00:00Z", commands: [] },
            key.privateKey,
          ),
        );
        const seen = ids(first.sessions);
        let cursor = first.next;
        while (cursor) {
          const page = await store.searchSessions({ user: "pat", limit: 10, cursor });
          seen.push(...ids(page.sessions));
          cursor = page.next;
        }
        assert.deepEqual(seen, [...specs.map((s) => s.id)].reverse(), "the newer session is not on later pages");
        assert.equal((await store.searchSessions({ user: "pat", limit: 1 })).sessions[0]?.id, "p-new");
      });

      it("caps the page size and refuses a foreign cursor", async () => {
        assert.equal((await store.searchSessions({ user: "pat", limit: 10_000 })).sessions.length, 24);
        await assert.rejects(store.searchSessions({ cursor: "bm9wZQ" }), /cursor is not one this search returned/);
        await assert.rejects(store.searchSessions({ limit: 0 }), /limit must be a positive integer/);
      });
    });
  });
}

storeTests("RecordingStore on chDB (embedded ClickHouse)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-store-"));
  const db = await openChdb(dir);
  return {
    db,
    cleanup: async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// The server executor and @clickhouse/client's own parameter binding and inserts, without a server:
// chDB plugs into the client as its connection.
storeTests("RecordingStore through @clickhouse/client (chDB as its connection)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-store-client-"));
  // chdb/connection is typed against @clickhouse/client-common 1.23.0 and the client carries its own
  // copy of those types (1.23.1): the same at run time, two types to the compiler.
  const connection = binaryBodies(createChdbConnection({ path: dir }) as unknown as ClientConnection, dir);
  const db = clickHouseExecutor(createClient({ connection }));
  return {
    db,
    cleanup: async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

/**
 * chDB's connection passes an `exec` body to the engine inside the statement's text, which binary
 * does not survive; a server reads it from the HTTP body as bytes. So an exec with a RowBinary body
 * (the executor's `insertRowBinary`) reaches chDB here as the same statement and bytes, read from a
 * file (`FROM INFILE`). Everything else goes through as it is.
 */
function binaryBodies(connection: ClientConnection, dir: string): ClientConnection {
  let files = 0;
  const exec = connection.exec.bind(connection);
  connection.exec = async (params) => {
    const insert = / FORMAT RowBinary$/.exec(params.query);
    if (!insert || !params.values) return exec(params);
    const file = join(dir, `body-${++files}.rowbinary`);
    writeFileSync(file, await buffer(params.values as NodeJS.ReadableStream));
    const query = `${params.query.slice(0, insert.index)} FROM INFILE '${file}' FORMAT RowBinary`;
    return exec({ ...params, query, values: undefined });
  };
  return connection;
}

const serverUrl = process.env.CLICKHOUSE_URL;
if (serverUrl) {
  storeTests(`RecordingStore on the ClickHouse server at ${serverUrl}`, async () => {
    const database = `vigil_test_${randomBytes(4).toString("hex")}`;
    const db = await openClickHouse({ url: serverUrl, database });
    return {
      db,
      cleanup: async () => {
        await db.exec("DROP DATABASE IF EXISTS {database:Identifier}", { database });
        await db.close();
      },
    };
  });
} else {
  describe("RecordingStore on a ClickHouse server", () => {
    it("skipped: set CLICKHOUSE_URL (e.g. http://127.0.0.1:8123) to run the store tests against a server", function () {
      this.skip();
    });
  });
}
