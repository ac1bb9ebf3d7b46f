import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { testServices } from "../support/env.js";
import { freePort } from "../support/services.js";
import { api, eventually, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import { freshDatabase, pgClient, psql, psqlUrl, relayCredentials } from "../postgres/support.js";
import { openChdb } from "../../storage/chdb.js";
import type { HubHandle } from "../support/mesh.js";
import { sshConfig, sshConnection, sshVia } from "../ssh/support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-drop-table
        effect: deny
        sql: { statements: [drop_table] }
`;
const DB = "vigil_rec";

/**
 * `vigil up`: the relay in the hub's process hands its events to chDB through an in-process queue.
 * Search, replay, verify, export and the live view, through the API and the CLI.
 */
describe("recordings with vigil up (embedded chDB)", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let up: VigilProcess;
  let apiUrl: string;
  let pgPort: number;
  let sshPort: number;
  let admin: string;
  let agent: string;
  let configFile: string;

  const start = async () => {
    up = spawnVigil("up", ["up", "--config", configFile]);
    await up.waitFor(/Vigil is up/, 60_000);
  };

  before(async () => {
    await freshDatabase(
      DB,
      "CREATE TABLE items (id int primary key, name text); INSERT INTO items VALUES (1, 'one'), (2, 'two');",
    );
    pgPort = await freePort();
    sshPort = await freePort();
    const apiPort = await freePort();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    const policies = dir.file("policy.yaml");
    writeFileSync(policies, POLICY);
    configFile = dir.writeConfig("vigil.yaml", {
      listen: {
        api: `127.0.0.1:${apiPort}`,
        grpc: `127.0.0.1:${await freePort()}`,
        postgres: `127.0.0.1:${pgPort}`,
        ssh: `127.0.0.1:${sshPort}`,
      },
      storage: { embedded: { path: dir.file("data") } },
      policies: [policies],
      relay: {
        segment: "local",
        connections: [
          {
            name: "pg",
            type: "postgres",
            target: `127.0.0.1:${testServices().pg.port}`,
            credentials: relayCredentials(),
          },
          sshConnection("web"),
        ],
      },
    });
    await start();
    admin = readFileSync(dir.file("data/admin.token"), "utf8").trim();
    const res = await api(apiUrl, "/api/v1/tokens", admin, {
      method: "POST",
      body: { name: "agent-rec", groups: ["agents"], ttl: "1h" },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    agent = String(res.body.token);
  });

  after(async () => {
    await up?.stop();
    dir.cleanup();
  });

  const cli = async (args: string[], token = admin) => {
    const p = spawnVigil(args[0]!, [...args, "--hub", apiUrl], { VIGIL_TOKEN: token });
    const { code } = await p.exited;
    return { code, stdout: p.stdout, stderr: p.stderr };
  };

  let sessionId: string;
  let liveId: string;

  it("a psql session is searchable with its commands within 2 s of ending", async () => {
    const marker = `rec_marker_${Date.now()}`;
    const r = await psql(psqlUrl(pgPort, "pg", DB), agent, [
      "-c",
      `SELECT name AS ${marker} FROM items ORDER BY id`,
      "-c",
      "DROP TABLE items",
      "-c",
      "SELECT count(*) FROM items",
    ]);
    assert.match(r.stderr, /42501|no-drop-table/);
    const ended = Date.now();
    const found = await eventually(
      "the session in search",
      async () => {
        const res = await api(apiUrl, `/api/v1/sessions?q=${marker}`, admin);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const sessions = res.body.sessions as { id: string; running: boolean }[];
        return sessions.length === 1 && !sessions[0]!.running ? sessions[0] : undefined;
      },
      5_000,
    );
    const took = Date.now() - ended;
    assert.ok(took <= 2_000, `searchable after ${took} ms`);
    sessionId = found.id;
    const s = (await api(apiUrl, `/api/v1/sessions/${sessionId}`, admin)).body;
    assert.equal(s.user, "agent-rec");
    assert.equal(s.connection, "pg");
    assert.equal(s.segment, "local");
    assert.equal(s.commands, 3);
    assert.equal(s.denied, true);
    assert.equal((s.params as Record<string, string>).database, DB);
  });

  it("serves the events in order as NDJSON, and verifies the chain and the relay's signature", async () => {
    const res = await fetch(`${apiUrl}/api/v1/sessions/${sessionId}/events`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const events = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; type: string; text?: string; decision?: string; rule?: string });
    assert.deepEqual(
      events.map((e) => e.seq),
      [...events.keys()],
    );
    assert.equal(events[0]!.type, "session_start");
    assert.equal(events.at(-1)!.type, "session_end");
    const drop = events.find((e) => e.type === "command" && e.text === "DROP TABLE items");
    assert.deepEqual([drop?.decision, drop?.rule], ["deny", "agents/no-drop-table"]);

    const verify = await api(apiUrl, `/api/v1/sessions/${sessionId}/verify`, admin);
    assert.deepEqual(verify.body, { ok: true, events: events.length, relayId: "local" });
  });

  it("the CLI searches, replays and verifies", async () => {
    const search = await cli(["sessions", "search", "--user", "agent-rec", "--from", "1h"]);
    assert.equal(search.code, 0, search.stderr);
    assert.match(
      search.stdout,
      new RegExp(`^${sessionId} .*agent-rec → pg \\(postgres, local\\)  3 commands  \\[denied, 1 error\\]$`, "m"),
    );
    const replay = await cli(["replay", sessionId]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /\+\d+\.\d{3}s {2}agent-rec connected to pg/);
    assert.match(replay.stdout, /#2 deny \(agents\/no-drop-table\): DROP TABLE items/);
    assert.match(replay.stdout, /#2 → error 42501/);
    const verify = await cli(["verify", sessionId]);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /^ok: \d+ events, chain intact, signed by relay local$/m);
    // Someone else's (non-admin) token may not read it.
    const res = await api(apiUrl, "/api/v1/tokens", admin, {
      method: "POST",
      body: { name: "someone-else", groups: ["agents"], ttl: "1h" },
    });
    const other = await cli(["sessions", "show", sessionId], String(res.body.token));
    assert.equal(other.code, 1);
    assert.match(other.stderr, /not yours to read/);
  });

  it("streams a running session's events live, until it ends", async () => {
    const c = await pgClient(pgPort, "pg", agent, DB);
    await c.query("SELECT 1");
    const running = await eventually("the running session", async () => {
      const res = await api(apiUrl, "/api/v1/sessions?user=agent-rec&limit=5", admin);
      return (res.body.sessions as { id: string; running: boolean }[]).find((s) => s.running);
    });
    const ac = new AbortController();
    const res = await fetch(`${apiUrl}/api/v1/sessions/${running.id}/live`, {
      headers: { authorization: `Bearer ${admin}` },
      signal: ac.signal,
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    const until = async (re: RegExp) =>
      eventually(`live stream to show ${re}`, async () => {
        const { value, done } = await reader.read();
        if (value) text += Buffer.from(value).toString();
        if (re.test(text)) return true;
        if (done) throw new Error(`stream ended: ${text}`);
        return undefined;
      });
    await until(/event: session_start/);
    await c.query("SELECT 'live-marker-1'");
    await until(/live-marker-1/);
    await c.end();
    await until(/event: session_end/);
    ac.abort();
    liveId = running.id;
  });

  it("exports events in a time range as NDJSON", async () => {
    const out = dir.file("export.ndjson");
    const r = await cli(["export", "--from", "1h", "--to", "0s", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const lines = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { session: string });
    assert.ok(lines.some((l) => l.session === sessionId));
    // Non-admins may not export the fleet.
    const denied = await cli(["export", "--from", "1h"], agent);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /not in an admin group/);
  });

  it("an ssh exec through the jump host is recorded; replay --asciicast gives its output", async () => {
    const via = { hub: { sshPort } as HubHandle, config: sshConfig(dir, "up"), token: agent };
    const r = await sshVia(via, "web", "echo", "hello-from-vigil-up");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "hello-from-vigil-up");
    const session = await eventually("the ssh session in search", async () => {
      const res = await api(apiUrl, "/api/v1/sessions?type=ssh&q=hello-from-vigil-up", admin);
      return (res.body.sessions as { id: string; running: boolean }[]).find((x) => !x.running);
    });
    const cast = await cli(["replay", session.id, "--asciicast", "-"]);
    assert.equal(cast.code, 0, cast.stderr);
    const [header, ...frames] = cast.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as unknown);
    assert.equal((header as { version: number }).version, 2);
    const output = (frames as [number, string, string][])
      .filter((f) => f[1] === "o")
      .map((f) => f[2])
      .join("");
    assert.match(output, /hello-from-vigil-up/);
    const verify = await cli(["verify", session.id]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  it("verify names the first altered event, a removed event, and a forged signature", async () => {
    const r = await psql(psqlUrl(pgPort, "pg", DB), agent, ["-c", "SELECT 'forge_marker'"]);
    assert.equal(r.code, 0, r.stderr);
    const forged = await eventually("the third session", async () => {
      const res = await api(apiUrl, "/api/v1/sessions?q=forge_marker", admin);
      return (res.body.sessions as { id: string; running: boolean }[]).find((s) => !s.running);
    });
    await up.stop(); // chDB's data dir belongs to one process at a time
    const db = await openChdb(dir.file("data/clickhouse"));
    try {
      // Someone with write access to the store edits history three ways.
      await db.exec(
        "ALTER TABLE events UPDATE body = replaceOne(body, 'DROP TABLE items', 'SELECT 1') WHERE session_id = {id:String} AND position(body, 'DROP TABLE items') > 0 SETTINGS mutations_sync = 1",
        { id: sessionId },
      );
      await db.exec("DELETE FROM events WHERE session_id = {id:String} AND seq = 2", { id: liveId });
      await db.exec(
        "ALTER TABLE events UPDATE signature = unhex(repeat('00', 64)) WHERE session_id = {id:String} AND length(signature) > 0 SETTINGS mutations_sync = 1",
        { id: forged.id },
      );
    } finally {
      await db.close();
    }
    await start();
    const altered = await cli(["verify", sessionId]);
    assert.equal(altered.code, 1);
    assert.match(altered.stdout, /^FAILED at seq 3: .*(altered|does not match the event's body)/m);
    const gap = await cli(["verify", liveId]);
    assert.equal(gap.code, 1);
    assert.match(gap.stdout, /^FAILED at seq 2: event 2 is missing/m);
    const sig = await cli(["verify", forged.id]);
    assert.equal(sig.code, 1);
    assert.match(sig.stdout, /^FAILED at seq \d+: the relay's signature on the last event does not verify/m);
  });
});
