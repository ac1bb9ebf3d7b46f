import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import type pg from "pg";
import { B, dataRow } from "../../lib/pgwire/backend.js";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { run } from "../support/services.js";
import { api, eventually, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  direct,
  pendingApproval,
  pgClient,
  psql,
  psqlUrl,
  RawClient,
  recordings,
  sendCancel,
  relayCredentials,
  runningOnTarget,
} from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-drop-table
        effect: deny
        sql: { statements: [drop_table] }
      - name: no-unbounded-delete
        effect: deny
        sql: { statements: [delete], where: absent }
      - name: review-account-updates
        effect: review
        approvers: { groups: [dba], count: 1, timeout: 4s }
        sql: { statements: [update], tables: [accounts] }
  - name: live-masking
    match: { connections: [{ name: pg-main }] }
    rules:
      - name: mask-customers-live
        effect: mask
        mask: { columns: [email, customers.ssn], detectors: [card], apply: live }
  - name: record-masking
    match: { connections: [{ name: pg-audit }] }
    rules:
      - name: mask-customers-in-recording
        effect: mask
        mask: { columns: [email], detectors: [card], apply: record }
`;

const CARD = "4111 1111 1111 1111";

describe("postgres path: psql, node-postgres and pgbench through hub and relay", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let agent: string;
  let dba: string;
  const relayData = () => dir.file("relay-pg-relay-data");

  before(async () => {
    const admin = await direct("postgres");
    await admin.query("DROP DATABASE IF EXISTS vigil_t");
    await admin.query("CREATE DATABASE vigil_t");
    await admin.end();
    const db = await direct();
    await db.query(`
      CREATE TABLE items (id int primary key, name text);
      INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
      CREATE TABLE accounts (id int primary key, balance int);
      INSERT INTO accounts VALUES (1, 100), (2, 200);
      CREATE TABLE customers (id int primary key, email text, card text, note text, ssn text);
      INSERT INTO customers VALUES (1, 'ann@example.com', '${CARD}', 'paid with ${CARD}', '078-05-1120');
      CREATE TABLE staff (id int primary key, ssn text);
      INSERT INTO staff VALUES (1, '219-09-9999');
    `);
    await db.end();

    hub = await startHubProcess(dir, { policy: POLICY });
    const credentials = relayCredentials();
    relay = startRelayProcess(dir, {
      id: "pg-relay",
      hub: hub.grpc,
      connections: [
        { name: "pg-main", type: "postgres", target: `127.0.0.1:${testServices().pg.port}`, credentials },
        { name: "pg-audit", type: "postgres", target: `127.0.0.1:${testServices().pg.port}`, credentials },
      ],
    });
    await waitForRelay(hub, "pg-relay");
    agent = await createToken(hub, hub.adminToken, "agent-7", ["agents"]);
    dba = await createToken(hub, hub.adminToken, "dana", ["dba"]);
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  describe("psql over TLS with a token", () => {
    it("runs queries and \\d", async () => {
      const url = psqlUrl(hub.pgPort, "pg-main");
      const q = await psql(url, agent, ["-At", "-c", "SELECT count(*), current_database() FROM items"]);
      assert.equal(q.code, 0, q.stderr);
      assert.equal(q.stdout.trim(), "10|vigil_t");
      const d = await psql(url, agent, ["-c", "\\d items"]);
      assert.equal(d.code, 0, d.stderr);
      assert.match(d.stdout, /Table "public\.items"/);
      assert.match(d.stdout, /id\s+\|\s+integer/);
      const ssl = await psql(url, agent, ["-At", "-c", "\\conninfo"]);
      assert.match(ssl.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
    });

    it("copies in and out, and runs a transaction", async () => {
      // pg-audit masks only the recording: COPY TO can stream rows as they are.
      const url = psqlUrl(hub.pgPort, "pg-audit");
      const script = [
        "CREATE TABLE copied (a int, b text);",
        "\\copy copied FROM STDIN",
        "1\tone",
        "2\ttwo",
        "\\.",
        "BEGIN;",
        "INSERT INTO copied VALUES (3, 'three');",
        "SELECT 'in-transaction';",
        "COMMIT;",
        "\\copy (SELECT a, b FROM copied ORDER BY a) TO STDOUT",
      ].join("\n");
      const res = await psql(url, agent, ["-At", "-f", "-"], script + "\n");
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stderr, "");
      assert.match(res.stdout, /in-transaction/);
      assert.match(res.stdout, /1\tone\n2\ttwo\n3\tthree/);
      // pg-main masks a column live, which COPY's raw rows would bypass: refused, the session goes on.
      const live = await psql(
        psqlUrl(hub.pgPort, "pg-main"),
        agent,
        ["-At", "-f", "-"],
        "\\copy copied TO STDOUT\nSELECT 'next';\n",
      );
      assert.match(live.stderr, /ERROR: {2}Vigil: COPY TO is refused while a column of this session is masked/);
      assert.match(live.stdout, /next/);
    });

    it("Ctrl-C cancels a running pg_sleep(30)", async () => {
      const started = Date.now();
      const child = spawn("psql", [psqlUrl(hub.pgPort, "pg-main"), "-X", "-c", "SELECT pg_sleep(30)"], {
        env: { ...process.env, PGPASSWORD: agent },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b));
      child.stderr.on("data", (b: Buffer) => (out += b));
      await runningOnTarget("SELECT pg_sleep(30)");
      child.kill("SIGINT");
      const code = await new Promise<number | null>((r) => child.once("close", r));
      assert.match(out, /canceling statement due to user request/);
      assert.ok(Date.now() - started < 20_000, "cancelled long before the 30 s sleep ended");
      assert.equal(code, 1);
    });

    it("a CancelRequest with the session's key cancels only that statement; the session goes on", async () => {
      const raw = await RawClient.open(hub.pgPort, "pg-main", agent);
      try {
        raw.send(0x51, Buffer.from("SELECT pg_sleep(30)\0"));
        await runningOnTarget("SELECT pg_sleep(30)");
        const wrongKey = { pid: raw.backendKey.pid, secret: Buffer.from("nope") };
        await sendCancel(hub.pgPort, wrongKey); // ignored, as a server ignores a wrong key
        await sendCancel(hub.pgPort, raw.backendKey);
        const got = await raw.until(B.ReadyForQuery);
        assert.equal(raw.errorOf(got)?.C, "57014");
        raw.send(0x51, Buffer.from("SELECT 'still here'\0"));
        const after = await raw.until(B.ReadyForQuery);
        assert.ok(after.some((m) => m.code === B.DataRow && m.body.includes("still here")));
      } finally {
        raw.close();
      }
    });

    it("refuses a plaintext password: TLS is required", async () => {
      const res = await psql(psqlUrl(hub.pgPort, "pg-main", "vigil_t", "disable"), agent, ["-c", "SELECT 1"]);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, /Vigil accepts tokens only over TLS/);
    });
  });

  describe("node-postgres", () => {
    it("prepared statements, binary results and LISTEN/NOTIFY across two sessions", async () => {
      const a = await pgClient(hub.pgPort, "pg-main", agent);
      const b = await pgClient(hub.pgPort, "pg-main", agent);
      try {
        for (let i = 1; i <= 3; i++) {
          const r = await a.query({ name: "by-id", text: "SELECT id, name FROM items WHERE id = $1", values: [i] });
          assert.deepEqual(r.rows, [{ id: i, name: `item ${i}` }]);
        }
        const bin = await a.query({
          text: "SELECT $1::int4 AS n, 'x'::text AS t, now() AS ts",
          values: [42],
          binary: true,
        } as pg.QueryConfig);
        assert.equal(bin.rows[0].n, 42);
        assert.equal(bin.fields[0]!.format, "binary");

        const got = new Promise<pg.Notification>((resolve) => a.once("notification", resolve));
        await a.query("LISTEN vigil_events");
        await b.query("NOTIFY vigil_events, 'hello from b'");
        const n = await got;
        assert.equal(n.channel, "vigil_events");
        assert.equal(n.payload, "hello from b");
      } finally {
        await a.end();
        await b.end();
      }
    });

    it("a pipeline of extended-protocol messages in one write gets every answer in order", async () => {
      const raw = await RawClient.open(hub.pgPort, "pg-main", agent);
      try {
        const parts: Buffer[] = [];
        const msg = (type: number, body: Buffer) => {
          const head = Buffer.alloc(5);
          head[0] = type;
          head.writeInt32BE(body.length + 4, 1);
          parts.push(head, body);
        };
        for (let i = 1; i <= 3; i++) {
          msg(0x50, Buffer.from(`\0SELECT name FROM items WHERE id = ${i}\0\0\0`)); // Parse unnamed
          msg(0x42, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])); // Bind: portal "", statement "", no formats/params/results
          msg(0x44, Buffer.from("P\0")); // Describe portal
          msg(0x45, Buffer.from([0, 0, 0, 0, 0])); // Execute "", all rows
        }
        msg(0x53, Buffer.alloc(0)); // Sync
        raw.socket.write(Buffer.concat(parts));
        const got = await raw.until(B.ReadyForQuery);
        const rows = got.filter((m) => m.code === B.DataRow).map((m) => m.body.subarray(6).toString());
        assert.deepEqual(rows, ["item 1", "item 2", "item 3"]);
        assert.equal(got.filter((m) => m.code === B.CommandComplete).length, 3);
      } finally {
        raw.close();
      }
    });
  });

  describe("enforcement", () => {
    it("DROP TABLE and DELETE without WHERE get 42501 naming the rule; the session continues", async () => {
      const c = await pgClient(hub.pgPort, "pg-main", agent);
      try {
        await assert.rejects(c.query("DROP TABLE items"), (err: pg.DatabaseError) => {
          assert.equal(err.code, "42501");
          assert.match(err.message, /agents\/no-drop-table/);
          return true;
        });
        await assert.rejects(c.query("DELETE FROM items"), { code: "42501" });
        // Extended protocol: refused at Execute, the rest of the batch discarded until Sync.
        await assert.rejects(c.query({ text: "DELETE FROM items", values: [] }), { code: "42501" });
        const { rows } = await c.query("SELECT count(*)::int AS n FROM items");
        assert.equal(rows[0].n, 10, "nothing was deleted and the session still works");
        // Inside a transaction, a refusal keeps the transaction's real status.
        await c.query("BEGIN");
        await assert.rejects(c.query("DROP TABLE items"), { code: "42501" });
        await c.query("SELECT 1");
        await c.query("COMMIT");
      } finally {
        await c.end();
      }
      const direct_ = await direct();
      const { rows } = await direct_.query("SELECT count(*)::int AS n FROM items");
      await direct_.end();
      assert.equal(rows[0].n, 10);
    });

    it("a reviewed UPDATE waits for approval through the API, then runs", async () => {
      const c = await pgClient(hub.pgPort, "pg-main", agent);
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(n.message ?? ""));
      try {
        const update = c.query("UPDATE accounts SET balance = balance + 1 WHERE id = 1");
        const id = await pendingApproval(hub.api, hub.adminToken, /UPDATE accounts SET balance = balance \+ 1/);
        await eventually("the waiting notice", () => (notices.some((n) => n.includes(id)) ? true : undefined));
        const self = await api(hub.api, `/api/v1/approvals/${id}/approve`, agent, { method: "POST", body: {} });
        assert.equal(self.status, 403, "the requester cannot approve its own statement");
        const ok = await api(hub.api, `/api/v1/approvals/${id}/approve`, dba, {
          method: "POST",
          body: { reason: "ticket 42" },
        });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        const r = await update;
        assert.equal(r.rowCount, 1);
        const { rows } = await c.query("SELECT balance FROM accounts WHERE id = 1");
        assert.equal(rows[0].balance, 101);
      } finally {
        await c.end();
      }
    });

    it("a denied review and a timed-out one do not run", async () => {
      const c = await pgClient(hub.pgPort, "pg-main", agent);
      try {
        const update = c.query("UPDATE accounts SET balance = 0 WHERE id = 2");
        const id = await pendingApproval(hub.api, hub.adminToken, /SET balance = 0 WHERE id = 2/);
        const no = await api(hub.api, `/api/v1/approvals/${id}/deny`, dba, { method: "POST", body: { reason: "no" } });
        assert.equal(no.status, 200);
        await assert.rejects(update, (err: pg.DatabaseError) => {
          assert.equal(err.code, "42501");
          assert.match(err.message, /was denied/);
          return true;
        });
        // Nobody answers this one: the 4 s timeout denies it.
        await assert.rejects(c.query("UPDATE accounts SET balance = -1 WHERE id = 2"), /timed out/);
        const { rows } = await c.query("SELECT balance FROM accounts WHERE id = 2");
        assert.equal(rows[0].balance, 200, "the table still has its values");
      } finally {
        await c.end();
      }
    });
  });

  describe("masking", () => {
    it("masks email and card live when the policy says live", async () => {
      const c = await pgClient(hub.pgPort, "pg-main", agent);
      try {
        const { rows } = await c.query("SELECT email, card, note FROM customers");
        assert.equal(rows[0].email, "[masked]");
        assert.equal(rows[0].card, "[masked:card]");
        assert.equal(rows[0].note, "paid with [masked:card]");
        // customers.ssn names its table: the relay resolves RowDescription's table OIDs to apply it.
        const joined = await c.query("SELECT c.ssn, s.ssn AS staff_ssn FROM customers c, staff s");
        assert.equal(joined.rows[0].ssn, "[masked]");
        assert.equal(joined.rows[0].staff_ssn, "219-09-9999", "staff.ssn is another table's column");
        const prepared = await c.query({ text: "SELECT email, card FROM customers WHERE id = $1", values: [1] });
        assert.equal(prepared.rows[0].email, "[masked]");
        assert.equal(prepared.rows[0].card, "[masked:card]");
      } finally {
        await c.end();
      }
    });

    it("passes values live but masks the recording when the policy says record", async () => {
      const c = await pgClient(hub.pgPort, "pg-audit", agent);
      try {
        const { rows } = await c.query(`SELECT email, card FROM customers WHERE card = '${CARD}'`);
        assert.equal(rows[0].email, "ann@example.com");
        assert.equal(rows[0].card, CARD);
      } finally {
        await c.end();
      }
      const events = await eventually("the recorded result", () => {
        const all = recordings(relayData());
        const cmd = all.find((e) => e.type === "command" && String(e.text).includes("FROM customers WHERE card"));
        const result =
          cmd && all.find((e) => e.type === "result" && e.session === cmd.session && e.command === cmd.command);
        return result ? { cmd, result } : undefined;
      });
      assert.ok(!String(events.cmd.text).includes(CARD), "the statement's literal is masked in the recording");
      assert.deepEqual(events.result.sample, [["[masked]", "[masked:card]"]]);
      assert.equal(events.result.rows, 1);
      assert.match(String(events.result.digest), /^[0-9a-f]{64}$/);
    });
  });

  describe("large results", () => {
    // Tens of thousands of rows arrive many to a socket read: the relay handles them a run at a time.
    const ROWS = 40000;
    const SQL = `SELECT g AS id, 'user' || g || '@example.com' AS email,
      'card ' || CASE WHEN g % 1000 = 0 THEN '${CARD}' ELSE g::text END AS note, NULLIF(g % 7, 0) AS seven
      FROM generate_series(1, ${ROWS}) g`;
    const asText = { getTypeParser: () => (v: string) => v };

    it("masks every row live, and records the digest of the rows as the target sent them", async () => {
      const db = await direct();
      let sent: (string | null)[][];
      try {
        sent = (await db.query({ text: SQL, rowMode: "array", types: asText })).rows as (string | null)[][];
      } finally {
        await db.end();
      }
      const expected = createHash("sha256");
      for (const row of sent)
        expected.update(dataRow(row.map((v) => (v === null ? null : Buffer.from(v)))).subarray(5));
      const digest = expected.digest("hex");
      for (const connection of ["pg-main", "pg-audit"]) {
        const c = await pgClient(hub.pgPort, connection, agent);
        let rows: (string | null)[][];
        try {
          rows = (await c.query({ text: `${SQL} -- ${connection}`, rowMode: "array", types: asText })).rows as (
            string | null
          )[][];
        } finally {
          await c.end();
        }
        assert.equal(rows.length, ROWS);
        rows.forEach((row, i) => {
          const live = connection === "pg-main";
          const want = [
            sent[i]![0]!,
            live ? "[masked]" : sent[i]![1]!,
            live && (i + 1) % 1000 === 0 ? "card [masked:card]" : sent[i]![2]!,
            sent[i]![3]!,
          ];
          if (JSON.stringify(row) !== JSON.stringify(want)) assert.deepEqual(row, want, `${connection} row ${i + 1}`);
        });
        const result = await eventually(`the recorded result of ${connection}`, () => {
          const all = recordings(relayData());
          const cmd = all.find((e) => e.type === "command" && String(e.text).includes(`-- ${connection}`));
          return cmd && all.find((e) => e.type === "result" && e.session === cmd.session && e.command === cmd.command);
        });
        assert.equal(result.rows, ROWS);
        assert.equal(result.digest, digest, `${connection}: the digest is of the target's rows, before masking`);
      }
    });
  });

  describe("errors", () => {
    it("a bad token gets 28P01, an unknown connection 3D000; other sessions are unaffected", async () => {
      const keep = await pgClient(hub.pgPort, "pg-main", agent);
      try {
        await assert.rejects(pgClient(hub.pgPort, "pg-main", "not-a-token"), { code: "28P01" });
        await assert.rejects(pgClient(hub.pgPort, "no-such-db", agent), { code: "3D000" });
        const outsider = await createToken(hub, hub.adminToken, "outsider", ["visitors"]);
        await assert.rejects(pgClient(hub.pgPort, "pg-main", outsider), { code: "28000" });
        const { rows } = await keep.query("SELECT 1 AS one");
        assert.equal(rows[0].one, 1);
      } finally {
        await keep.end();
      }
    });

    it("a connection whose relay is down gets 08001", async () => {
      const spare = startRelayProcess(dir, {
        id: "pg-spare",
        hub: hub.grpc,
        connections: [
          {
            name: "pg-spare",
            type: "postgres",
            target: `127.0.0.1:${testServices().pg.port}`,
            credentials: relayCredentials(),
          },
        ],
      });
      await waitForRelay(hub, "pg-spare");
      const c = await pgClient(hub.pgPort, "pg-spare", agent);
      await c.end();
      await spare.stop();
      await assert.rejects(pgClient(hub.pgPort, "pg-spare", agent), (err: pg.DatabaseError) => {
        assert.equal(err.code, "08001");
        assert.match(err.message, /no relay serving "pg-spare" is online/);
        return true;
      });
    });

    it("an unknown database at the target keeps its SQLSTATE", async () => {
      await assert.rejects(pgClient(hub.pgPort, "pg-main", agent, "no_such_database"), { code: "3D000" });
    });

    it("a malformed frame ends that session with 08P01; others keep working", async () => {
      const keep = await pgClient(hub.pgPort, "pg-main", agent);
      const raw = await RawClient.open(hub.pgPort, "pg-main", agent);
      try {
        raw.socket.write(Buffer.from([0x01, 0, 0, 0, 8, 1, 2, 3, 4])); // no such message type
        const got = await raw.until(B.ErrorResponse);
        assert.equal(raw.errorOf(got)?.C, "08P01");
        const oversize = await RawClient.open(hub.pgPort, "pg-main", agent);
        const sync = Buffer.from([0x53, 0, 0, 0x30, 0]); // Sync claiming 12 KiB
        oversize.socket.write(sync);
        const e = oversize.errorOf(await oversize.until(B.ErrorResponse));
        assert.ok(e && ["08P01", "54000"].includes(e.C!), JSON.stringify(e));
        oversize.close();
        const { rows } = await keep.query("SELECT 2 AS two");
        assert.equal(rows[0].two, 2);
      } finally {
        raw.close();
        await keep.end();
      }
    });

    it("the client never receives the target's password", async () => {
      const raw = await RawClient.open(hub.pgPort, "pg-main", agent);
      try {
        raw.send(0x51, Buffer.from("SELECT current_user, version()\0"));
        await raw.until(B.ReadyForQuery);
        raw.send(0x51, Buffer.from("SELECT * FROM no_such_table\0"));
        await raw.until(B.ReadyForQuery);
      } finally {
        raw.close();
      }
      const bytes = Buffer.concat(raw.received);
      assert.equal(bytes.indexOf(testServices().pg.password), -1);
      const failed = await psql(psqlUrl(hub.pgPort, "pg-main", "no_such_database"), agent, ["-c", "SELECT 1"]);
      assert.ok(!failed.stderr.includes(testServices().pg.password));
    });

    it("pgbench runs through the front door (simple and prepared)", async () => {
      const env = { ...process.env, PGPASSWORD: agent, PGSSLMODE: "require" };
      const url = ["-h", "127.0.0.1", "-p", String(hub.pgPort), "-U", "pg-main"];
      const init = await run("pgbench", [...url, "-i", "-I", "tgvp", "-s", "1", "vigil_t"], { env, timeoutMs: 60_000 });
      assert.equal(init.code, 0, init.stderr);
      for (const mode of ["simple", "prepared"]) {
        const r = await run("pgbench", [...url, "-S", "-M", mode, "-c", "2", "-t", "50", "vigil_t"], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /number of transactions actually processed: 100\/100/);
      }
    });
  });
});
