import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { generateKey } from "../../lib/keys.js";
import { EventChain, RecordingEvent, type EventBody } from "../../lib/recording/chain.js";
import { DEAD_LETTER_STREAM, messageId, recordingSubject } from "../../lib/recording/nats.js";
import { openChdb } from "../../storage/chdb.js";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { startNats, type NatsHandle } from "../support/services.js";
import { api, eventually, sleep, Workdir, type VigilProcess } from "../support/vigil.js";
import { freshDatabase, pgClient, psql, psqlUrl, relayCredentials } from "../postgres/support.js";

const DB = "vigil_rec_nats";

/**
 * The cluster path: relays in two segments publish to JetStream, the hub's ingest worker stores
 * into ClickHouse (chDB here), and search, verify and the dead-letter subject work across them.
 */
describe("recordings through NATS JetStream into ClickHouse", function () {
  this.timeout(180_000);
  const dir = new Workdir();
  let nats: NatsHandle;
  let nc: NatsConnection;
  let hub: HubHandle;
  const relays: VigilProcess[] = [];
  let alice: string;
  let bob: string;

  const startHub = async (ports?: Pick<HubHandle, "apiPort" | "grpcPort" | "pgPort">) =>
    startHubProcess(dir, {
      ...ports,
      extra: { storage: { nats: { url: nats.url }, clickhouse: { path: dir.file("clickhouse") } } },
    });

  before(async () => {
    await freshDatabase(DB, "CREATE TABLE items (id int primary key, name text); INSERT INTO items VALUES (1, 'one');");
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    hub = await startHub();
    for (const [id, segment] of [
      ["relay-east", "east"],
      ["relay-west", "west"],
    ] as const) {
      relays.push(
        startRelayProcess(dir, {
          id,
          segment,
          hub: hub.grpc,
          connections: [
            {
              name: `pg-${segment}`,
              type: "postgres",
              target: `127.0.0.1:${testServices().pg.port}`,
              credentials: relayCredentials(),
            },
          ],
          storage: { nats: { url: nats.url } },
          topLevel: { recording: { spool: { dir: dir.file(`${id}-spool`) } } },
        }),
      );
      await waitForRelay(hub, id);
    }
    alice = await createToken(hub, hub.adminToken, "alice", ["tests"]);
    bob = await createToken(hub, hub.adminToken, "bob", ["tests"]);
  });

  after(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await hub?.proc.stop();
    await nc?.close();
    await nats?.stop();
    dir.cleanup();
  });

  const search = async (query: string) => {
    const res = await api(hub.api, `/api/v1/sessions?${query}`, hub.adminToken);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.sessions as { id: string; user: string; segment: string; running: boolean; commands: number }[];
  };

  it("a psql session is searchable within 2 s of ending, and searches span both segments", async () => {
    const started = new Date(Date.now() - 1000).toISOString();
    for (const [token, segment, word] of [
      [alice, "east", "aardvark"],
      [bob, "west", "aardvark"],
      [alice, "west", "zebra"],
    ] as const) {
      const r = await psql(psqlUrl(hub.pgPort, `pg-${segment}`, DB), token, ["-c", `SELECT '${word}' AS animal`]);
      assert.equal(r.code, 0, r.stderr);
    }
    const ended = Date.now();
    await eventually("the last session in search", async () => {
      const s = await search("q=zebra");
      return s.length === 1 && !s[0]!.running ? s : undefined;
    });
    const took = Date.now() - ended;
    assert.ok(took <= 2_000, `searchable after ${took} ms`);

    const range = `from=${encodeURIComponent(started)}&to=${encodeURIComponent(new Date().toISOString())}`;
    const aliceAardvark = await search(`user=alice&q=aardvark&${range}`);
    assert.deepEqual(
      aliceAardvark.map((s) => [s.user, s.segment]),
      [["alice", "east"]],
    );
    const anyAardvark = await search(`q=aardvark&${range}`);
    assert.deepEqual(anyAardvark.map((s) => s.segment).sort(), ["east", "west"]);
    const aliceAll = await search(`user=alice&${range}`);
    assert.deepEqual(aliceAll.map((s) => s.segment).sort(), ["east", "west"]);
    // A time range before all of it finds nothing.
    assert.deepEqual(await search(`user=alice&to=${encodeURIComponent(started)}`), []);
    for (const s of anyAardvark) {
      const v = await api(hub.api, `/api/v1/sessions/${s.id}/verify`, hub.adminToken);
      assert.equal(v.body.ok, true, JSON.stringify(v.body));
    }
  });

  it("NATS dies mid-session: the relay spools, drains in order when NATS returns, nothing lost or doubled", async () => {
    const c = await pgClient(hub.pgPort, "pg-east", alice, DB);
    for (let i = 0; i < 20; i++) await c.query(`SELECT 'before-outage-${i}'`);
    await nats.kill();
    for (let i = 0; i < 50; i++) await c.query(`SELECT 'during-outage-${i}'`);
    await nats.restart();
    for (let i = 0; i < 20; i++) await c.query(`SELECT 'after-outage-${i}'`);
    await c.end();

    const session = await eventually(
      "the session, ended, in search",
      async () => {
        const s = await search("q=during-outage-49");
        return s.length === 1 && !s[0]!.running ? s[0] : undefined;
      },
      60_000,
    );
    assert.equal(session.commands, 90);
    const res = await fetch(`${hub.api}/api/v1/sessions/${session.id}/events`, {
      headers: { authorization: `Bearer ${hub.adminToken}` },
    });
    const events = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; type: string; text?: string });
    assert.deepEqual(
      events.map((e) => e.seq),
      [...events.keys()],
      "every seq once, in order",
    );
    const texts = events.filter((e) => e.type === "command").map((e) => e.text);
    assert.equal(texts.length, 90);
    assert.equal(texts[20], "SELECT 'during-outage-0'");
    assert.equal(texts[89], "SELECT 'after-outage-19'");
    const v = await api(hub.api, `/api/v1/sessions/${session.id}/verify`, hub.adminToken);
    assert.deepEqual(v.body, { ok: true, events: events.length, relayId: "relay-east" });
  });

  it("malformed messages go to the dead-letter subject with the reason; ingest carries on", async () => {
    const js = jetstream(nc);
    await js.publish("vigil.rec.east.not-an-event", Buffer.from("definitely not protobuf \xff\xfe"));
    const stray = new EventChain("real-session").append(body("x"));
    await js.publish("vigil.rec.east.some-other-session", RecordingEvent.encode(stray).finish());
    const jsm = await jetstreamManager(nc);
    const reasons = await eventually("both dead letters", async () => {
      const info = await jsm.streams.info(DEAD_LETTER_STREAM);
      if (info.state.messages < 2) return undefined;
      const out: string[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(DEAD_LETTER_STREAM, { seq });
        out.push(`${m?.header.get("Vigil-Subject")}: ${m?.header.get("Vigil-Reason")}`);
      }
      return out;
    });
    assert.ok(
      reasons.some((r) => /^vigil\.rec\.east\.not-an-event: not a RecordingEvent/.test(r)),
      reasons.join("\n"),
    );
    assert.ok(
      reasons.some((r) =>
        /^vigil\.rec\.east\.some-other-session: subject .* does not name session real-session/.test(r),
      ),
      reasons.join("\n"),
    );
    // And the next real session is stored as usual.
    const r = await psql(psqlUrl(hub.pgPort, "pg-west", DB), bob, ["-c", "SELECT 'after-dead-letters'"]);
    assert.equal(r.code, 0, r.stderr);
    await eventually("the session after the dead letters", async () =>
      (await search("q=after-dead-letters")).length === 1 ? true : undefined,
    );
  });

  it("the ingest worker killed mid-batch and restarted stores every event exactly once", async () => {
    // Events straight onto the stream, as relays publish them: 40 sessions of 1000 events.
    const js = jetstream(nc);
    const key = generateKey();
    const sessions = Array.from({ length: 40 }, (_, i) => `bulk-${Date.now()}-${i}`);
    const publishAll = async () => {
      const pending: Promise<unknown>[] = [];
      for (const id of sessions) {
        const chain = new EventChain(id);
        const events = [chain.append({ $case: "sessionStart", value: start(id) })];
        for (let n = 1; n < 999; n++) events.push(chain.append(body(`SELECT ${n} /* ${id} */`, n)));
        events.push(chain.seal({ $case: "sessionEnd", value: { error: "", commands: 998 } }, key.privateKey));
        for (const e of events) {
          pending.push(
            js.publish(recordingSubject("bulk", id), RecordingEvent.encode(e).finish(), {
              msgID: messageId(id, e.seq),
            }),
          );
          if (pending.length >= 2000) await Promise.all(pending.splice(0));
        }
      }
      await Promise.all(pending);
    };
    const before = Number((await api(hub.api, "/api/v1/ingest", hub.adminToken)).body.stored);
    const published = publishAll();

    // Kill the hub (and its ingest worker) once it has stored some of them but not all.
    await eventually(
      "ingest part-way",
      async () => {
        const res = await api(hub.api, "/api/v1/ingest", hub.adminToken);
        const stored = Number(res.body.stored) - before;
        return stored > 0 && stored < 40 * 1000 ? true : undefined;
      },
      60_000,
    );
    hub.proc.child.kill("SIGKILL");
    await hub.proc.exited;
    await published;
    hub = await startHub({ apiPort: hub.apiPort, grpcPort: hub.grpcPort, pgPort: hub.pgPort });
    // Redelivery of what the dead worker held waits out the ack wait (15 s).
    await eventually(
      "ingest to catch up",
      async () => {
        const res = await api(hub.api, "/api/v1/ingest", hub.adminToken);
        return res.body.lag === 0 ? true : undefined;
      },
      90_000,
    );
    await sleep(500);
    await hub.proc.stop();
    const db = await openChdb(dir.file("clickhouse"));
    try {
      // No FINAL: the raw table rows, as ClickHouse holds them.
      const [row] = await db.query<{ rows: string; distinct: string }>(
        "SELECT count() AS rows, uniqExact(session_id, seq) AS distinct FROM events WHERE session_id LIKE 'bulk-%'",
      );
      assert.equal(Number(row!.distinct), 40 * 1000);
      assert.equal(Number(row!.rows), 40 * 1000, "no duplicate rows");
    } finally {
      await db.close();
    }
    hub = await startHub({ apiPort: hub.apiPort, grpcPort: hub.grpcPort, pgPort: hub.pgPort });
  });
});

function start(id: string) {
  return {
    connection: "bulk",
    connectionType: "postgres",
    segment: "bulk",
    relayId: "bulk-relay",
    hubId: "",
    user: `user-${id.slice(-1)}`,
    groups: [],
    clientAddress: "127.0.0.1",
    params: [],
    target: "127.0.0.1:5432",
  };
}

function body(text: string, n = 1): EventBody {
  return {
    $case: "command",
    value: {
      command: n,
      text,
      source: "sql",
      kinds: ["select"],
      tablesRead: [],
      tablesWritten: [],
      params: [],
      decision: 1,
      rule: "",
      reason: "",
    },
  };
}
