import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { B } from "../../lib/pgwire/backend.js";
import { testServices } from "../support/env.js";
import { createToken, type HubHandle } from "../support/mesh.js";
import { freePort, run } from "../support/services.js";
import { api, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  freshDatabase,
  pgClient,
  psql,
  psqlUrl,
  RawClient,
  relayCredentials,
  runningOnTarget,
  sendCancel,
} from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - { name: no-truncate, effect: deny, sql: { statements: [truncate] } }
      - { name: mask-email, effect: mask, mask: { columns: [email], detectors: [card], apply: both } }
`;

const CARD = "4111 1111 1111 1111";

/**
 * `vigil up` runs hub and relay in one process, and their tunnels are in-memory calls instead of
 * gRPC streams: the whole postgres path (TLS front door, policy, masks, cancel, recording) over it.
 */
describe("postgres path inside vigil up (in-process tunnel)", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let up: VigilProcess;
  let agent: string;
  let pgPort: number;
  let apiUrl: string;
  let admin: string;
  const data = dir.file("up-data");

  before(async () => {
    await freshDatabase(
      "vigil_up",
      `CREATE TABLE people (id int primary key, email text, note text);
       INSERT INTO people SELECT g, 'p' || g || '@example.com', 'note ' || g FROM generate_series(1, 2000) g;
       UPDATE people SET note = 'paid with ${CARD}' WHERE id = 7;`,
    );
    const [apiPort, grpcPort] = [await freePort(), await freePort()];
    pgPort = await freePort();
    mkdirSync(dir.file("policies"));
    writeFileSync(dir.file("policies/agents.yaml"), POLICY);
    const config = dir.writeConfig("up.yaml", {
      listen: { api: `127.0.0.1:${apiPort}`, grpc: `127.0.0.1:${grpcPort}`, postgres: `127.0.0.1:${pgPort}` },
      storage: { embedded: { path: data } },
      policies: [dir.file("policies/*.yaml")],
      relay: {
        connections: [
          {
            name: "pg-up",
            type: "postgres",
            target: `127.0.0.1:${testServices().pg.port}`,
            credentials: relayCredentials(),
          },
        ],
      },
    });
    up = spawnVigil("vigil up", ["up", "--config", config]);
    await up.waitFor(/Connect:/, 60_000);
    admin = readFileSync(join(data, "admin.token"), "utf8").trim();
    apiUrl = `http://127.0.0.1:${apiPort}`;
    agent = await createToken({ api: apiUrl } as HubHandle, admin, "agent-up", ["agents"]);
  });

  after(async () => {
    await up?.stop();
    dir.cleanup();
  });

  it("judges, masks and answers through the in-process tunnel", async () => {
    const url = psqlUrl(pgPort, "pg-up", "vigil_up");
    const q = await psql(url, agent, [
      "-At",
      "-c",
      "SELECT id, email, note FROM people WHERE id IN (1, 7) ORDER BY id",
    ]);
    assert.equal(q.code, 0, q.stderr);
    assert.equal(q.stdout.trim(), "1|[masked]|note 1\n7|[masked]|paid with [masked:card]");
    const denied = await psql(url, agent, ["-At", "-c", "TRUNCATE people", "-c", "SELECT count(*) FROM people"]);
    assert.match(denied.stderr, /Vigil: .*no-truncate/);
    assert.equal(denied.stdout.trim(), "2000");
    await up.waitFor(/"tunnel":"in-process".*"msg":"session started"|"msg":"session started".*"tunnel":"in-process"/);
    assert.doesNotMatch(up.stdout + up.stderr, /"tunnel":"grpc"/);
  });

  it("streams a result larger than the tunnel's window, and the extended protocol with parameters", async () => {
    const c = await pgClient(pgPort, "pg-up", agent, "vigil_up");
    try {
      const { rows } = await c.query<{ id: number; email: string }>(
        "SELECT id, email, repeat(note, 200) AS big FROM people ORDER BY id",
      );
      assert.equal(rows.length, 2000);
      assert.ok(rows.every((r) => r.email === "[masked]"));
      for (let i = 1; i <= 50; i++) {
        const r = await c.query<{ id: number }>("SELECT id FROM people WHERE id = $1", [i]);
        assert.equal(r.rows[0]?.id, i);
      }
    } finally {
      await c.end();
    }
  });

  it("runs pgbench -S in both protocols", async () => {
    const env = {
      ...process.env,
      PGPASSWORD: agent,
      PGSSLMODE: "require",
      PGHOST: "127.0.0.1",
      PGPORT: String(pgPort),
    };
    const { pg: s } = testServices();
    const init = await run(
      "pgbench",
      ["-i", "-q", "-s", "1", "-h", s.host, "-p", String(s.port), "-U", s.user, "vigil_up"],
      {
        env: { ...process.env, PGPASSWORD: s.password },
      },
    );
    assert.equal(init.code, 0, init.stderr);
    for (const mode of ["simple", "prepared"]) {
      const r = await run(
        "pgbench",
        ["-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200", "-U", "pg-up", "vigil_up"],
        { env },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /number of transactions actually processed: 800\/800/);
    }
  });

  it("cancels a running statement with the session's key; the session goes on", async () => {
    const raw = await RawClient.open(pgPort, "pg-up", agent, "vigil_up");
    try {
      raw.send(0x51, Buffer.from("SELECT pg_sleep(30)\0"));
      await runningOnTarget("SELECT pg_sleep(30)");
      await sendCancel(pgPort, raw.backendKey);
      const got = await raw.until(B.ReadyForQuery);
      assert.equal(raw.errorOf(got)?.C, "57014");
      raw.send(0x51, Buffer.from("SELECT 'still here'\0"));
      const after = await raw.until(B.ReadyForQuery);
      assert.ok(after.some((m) => m.code === B.DataRow && m.body.includes("still here")));
    } finally {
      raw.close();
    }
  });

  it("records every session as a chain the relay's key seals", async () => {
    // vigil up stores recordings in its embedded ClickHouse; the hub verifies each with the relay's pinned key.
    const res = await api(apiUrl, "/api/v1/sessions?limit=500", admin);
    const sessions = res.body.sessions as { id: string; running: boolean }[];
    assert.ok(sessions.length >= 4, `${sessions.length} sessions recorded`);
    let sealed = 0;
    for (const s of sessions.filter((x) => !x.running)) {
      const v = await api(apiUrl, `/api/v1/sessions/${s.id}/verify`, admin);
      assert.equal(v.body.ok, true, `${s.id}: ${JSON.stringify(v.body)}`);
      assert.equal(v.body.relayId, "local");
      sealed++;
    }
    assert.ok(sealed >= 4, `${sealed} sealed recordings`);
  });
});
