import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { api, eventually, sleep, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  directRows,
  freshDatabase,
  pendingApproval,
  pgClient,
  RawClient,
  recordings,
  relayCredentials,
  runningOnTarget,
  sendCancel,
} from "./support.js";

const CARD = "4111 1111 1111 1111";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const TABLES = `
  CREATE TABLE accounts (id int primary key, balance int, note text);
  INSERT INTO accounts VALUES (1, 100, NULL), (2, 200, NULL);
  CREATE TABLE ledger (id int primary key, amount int);
  INSERT INTO ledger VALUES (1, 10), (2, 20), (3, 30);
  CREATE TABLE items (id int primary key, name text);
  INSERT INTO items VALUES (1, 'item 1'), (2, 'item 2'), (3, 'item 3');
`;

const REVIEW_POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: allow-reads
        effect: allow
        sql: { statements: [select] }
      - name: no-drop-table
        effect: deny
        sql: { statements: [drop_table] }
      - name: no-unbounded-delete
        effect: deny
        sql: { statements: [delete], where: absent }
      - name: review-account-updates
        effect: review
        approvers: { groups: [dba], count: 1, timeout: 2m }
        sql: { statements: [update], tables: [accounts] }
      - name: review-ledger-writes
        effect: review
        approvers: { groups: [dba], count: 1, timeout: 3s }
        sql: { statements: [insert, update, delete], tables: [ledger] }
  - name: recording-masks
    rules:
      - name: cards-in-recording
        effect: mask
        mask: { detectors: [card], apply: record }
`;

interface Approval {
  id: string;
  kind: string;
  effectiveStatus: string;
  requester: { subject: string; groups: string[] };
  connection: string;
  policy: string;
  command?: string;
  sessionId?: string;
  approvers: { groups: string[]; count: number };
  decisions: { by: string; verdict: string; reason?: string }[];
}

type Event = Record<string, unknown>;

/** A statement that will be held: its rejection is asserted later, never left unhandled. */
function held(c: pg.Client, sql: string): Promise<pg.QueryResult> {
  const p = c.query(sql);
  p.catch(() => {});
  return p;
}

function refusedWith(pattern: RegExp) {
  return (err: pg.DatabaseError) => {
    assert.equal(err.code, "42501", err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

const errorMessage = (body: Record<string, unknown>) => (body.error as { message: string }).message;

describe("reviewed statements across two hubs, and `vigil policy test` against what the relay enforces", function () {
  this.timeout(180_000);
  const DB = "vigil_review";
  const dir = new Workdir();
  let hubA: HubHandle;
  let hubB: HubHandle;
  let relay: VigilProcess;
  const relayData = () => dir.file("relay-pg-review-relay-data");
  let agent: string;
  let dba: string;
  let eve: string;

  before(async () => {
    await freshDatabase(DB, TABLES);
    const shared = {
      storage: { nats: { url: testServices().nats.url } },
      identity: { signingKeyFile: dir.file("signing.key") },
    };
    [hubA, hubB] = await Promise.all([
      startHubProcess(dir, { name: "hub-a", policy: REVIEW_POLICY, extra: shared }),
      startHubProcess(dir, { name: "hub-b", policy: REVIEW_POLICY, extra: shared }),
    ]);
    relay = startRelayProcess(dir, {
      id: "pg-review-relay",
      hub: hubA.grpc,
      connections: [
        {
          name: "pg-main",
          type: "postgres",
          target: `127.0.0.1:${testServices().pg.port}`,
          credentials: relayCredentials(),
        },
      ],
      extra: { hubs: [hubA.grpc, hubB.grpc] },
    });
    await waitForRelay(hubA, "pg-review-relay");
    await waitForRelay(hubB, "pg-review-relay");
    [agent, dba, eve] = await Promise.all([
      createToken(hubA, hubA.adminToken, "agent-7", ["agents"]),
      createToken(hubA, hubA.adminToken, "dana", ["dba"]),
      createToken(hubA, hubA.adminToken, "eve", ["dev"]),
    ]);
  });

  after(async () => {
    await relay?.stop();
    await Promise.all([hubA?.proc.stop(), hubB?.proc.stop()]);
    dir.cleanup();
  });

  /** The recorded events of one session, once `ready` says the ones a test needs have been written. */
  const sessionEvents = (sessionId: string, ready: (events: Event[]) => boolean) =>
    eventually(`the recording of session ${sessionId}`, () => {
      const events = recordings(relayData()).filter((e) => e.session === sessionId);
      return ready(events) ? events : undefined;
    });

  const approval = async (hub: HubHandle, id: string) => {
    const res = await api(hub.api, `/api/v1/approvals/${id}`, hub.adminToken);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as unknown as Approval;
  };

  describe("review with approvers on another hub", () => {
    it("a statement held on hub A's session is approved on hub B, then runs and changes the row", async () => {
      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(n.message ?? ""));
      try {
        const sql = `UPDATE accounts SET balance = balance + 50, note = 'card ${CARD}' WHERE id = 1`;
        const update = held(c, sql);
        const id = await pendingApproval(hubB.api, hubB.adminToken, /UPDATE accounts SET balance = balance \+ 50/);

        const rec = await approval(hubB, id);
        assert.equal(rec.kind, "command");
        assert.equal(rec.effectiveStatus, "pending");
        assert.equal(
          rec.command,
          "UPDATE accounts SET balance = balance + 50, note = 'card [masked:card]' WHERE id = 1",
        );
        assert.equal(rec.policy, "agents/review-account-updates");
        assert.match(rec.sessionId ?? "", UUID);
        assert.deepEqual(rec.requester, { subject: "agent-7", groups: ["agents"] });
        assert.equal(rec.connection, "pg-main");
        assert.deepEqual(rec.approvers, { groups: ["dba"], count: 1 });
        await eventually("the waiting notice", () => (notices.some((n) => n.includes(id)) ? true : undefined));
        assert.deepEqual(
          await directRows(DB, "SELECT balance, note FROM accounts WHERE id = 1"),
          [{ balance: 100, note: null }],
          "held: nothing reached the table yet",
        );

        const ok = await api(hubB.api, `/api/v1/approvals/${id}/approve`, dba, {
          method: "POST",
          body: { reason: "ticket 7" },
        });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.equal(ok.body.effectiveStatus, "approved");
        const r = await update;
        assert.equal(r.rowCount, 1);
        assert.deepEqual(await directRows(DB, "SELECT balance, note FROM accounts WHERE id = 1"), [
          { balance: 150, note: `card ${CARD}` },
        ]);

        // The relay's recording: the command (masked), pending, approved by dana with her reason, then the result.
        const events = await sessionEvents(rec.sessionId!, (all) =>
          all.some((e) => e.type === "result" && e.tag === "UPDATE 1"),
        );
        const cmd = events.find((e) => e.type === "command" && e.decision === "review")!;
        assert.equal(cmd.text, rec.command);
        assert.equal(cmd.rule, "agents/review-account-updates");
        const steps = events.filter((e) => e.command === cmd.command && e.type !== "command");
        assert.deepEqual(
          steps.map((e) => [e.type, e.status ?? e.tag]),
          [
            ["approval", "pending"],
            ["approval", "approved"],
            ["result", "UPDATE 1"],
          ],
        );
        assert.equal(steps[0]!.approvalId, id);
        assert.equal(steps[1]!.approvalId, id);
        const decisions = steps[1]!.decisions as { by: string; verdict: string; reason: string }[];
        assert.deepEqual(
          decisions.map(({ by, verdict, reason }) => ({ by, verdict, reason })),
          [{ by: "dana", verdict: "approve", reason: "ticket 7" }],
        );
      } finally {
        await c.end();
      }
    });

    it("a denial on hub B refuses the statement with 42501; the row and the session stay as they were", async () => {
      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      try {
        const update = held(c, "UPDATE accounts SET balance = 0 WHERE id = 2");
        const id = await pendingApproval(hubB.api, hubB.adminToken, /UPDATE accounts SET balance = 0 WHERE id = 2/);
        const no = await api(hubB.api, `/api/v1/approvals/${id}/deny`, dba, {
          method: "POST",
          body: { reason: "not during the freeze" },
        });
        assert.equal(no.status, 200, JSON.stringify(no.body));
        await assert.rejects(
          update,
          refusedWith(new RegExp(`approval ${id} was denied \\(rule agents/review-account-updates\\)`)),
        );
        assert.deepEqual(await directRows(DB, "SELECT balance FROM accounts WHERE id = 2"), [{ balance: 200 }]);
        const { rows } = await c.query("SELECT balance FROM accounts WHERE id = 2");
        assert.equal(rows[0].balance, 200, "the session goes on");

        const sessionId = (await approval(hubA, id)).sessionId!;
        const events = await sessionEvents(sessionId, (all) =>
          all.some((e) => e.type === "approval" && e.status === "denied"),
        );
        const denied = events.find((e) => e.type === "approval" && e.status === "denied")!;
        assert.equal(denied.approvalId, id);
        assert.deepEqual(
          (denied.decisions as { by: string; verdict: string; reason: string }[]).map((d) => [
            d.by,
            d.verdict,
            d.reason,
          ]),
          [["dana", "deny", "not during the freeze"]],
        );
      } finally {
        await c.end();
      }
    });

    it("nobody deciding within the rule's timeout refuses the statement; a late approval cannot run it", async () => {
      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      try {
        const started = Date.now();
        const update = held(c, "UPDATE ledger SET amount = 0 WHERE id = 1");
        const id = await pendingApproval(hubB.api, hubB.adminToken, /UPDATE ledger SET amount = 0 WHERE id = 1/);
        await assert.rejects(
          update,
          refusedWith(new RegExp(`approval ${id} timed out \\(rule agents/review-ledger-writes\\)`)),
        );
        const waited = Date.now() - started;
        assert.ok(waited >= 2500 && waited < 15_000, `refused after ${waited} ms; the rule's timeout is 3 s`);
        assert.equal((await approval(hubB, id)).effectiveStatus, "expired");
        const late = await api(hubB.api, `/api/v1/approvals/${id}/approve`, dba, { method: "POST", body: {} });
        assert.equal(late.status, 409);
        assert.match(errorMessage(late.body), /is already expired/);
        await sleep(300);
        assert.deepEqual(await directRows(DB, "SELECT amount FROM ledger WHERE id = 1"), [{ amount: 10 }]);
        const { rows } = await c.query("SELECT amount FROM ledger WHERE id = 1");
        assert.equal(rows[0].amount, 10, "the session goes on");
      } finally {
        await c.end();
      }
    });

    it("the requester and non-approvers get 403; the statement stays held until an approver decides", async () => {
      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      try {
        const update = held(c, "UPDATE accounts SET balance = 999 WHERE id = 1");
        const id = await pendingApproval(hubB.api, hubB.adminToken, /UPDATE accounts SET balance = 999/);
        const self = await api(hubB.api, `/api/v1/approvals/${id}/approve`, agent, { method: "POST", body: {} });
        assert.equal(self.status, 403);
        assert.match(errorMessage(self.body), /you cannot approve or deny your own request/);
        const outsider = await api(hubB.api, `/api/v1/approvals/${id}/approve`, eve, { method: "POST", body: {} });
        assert.equal(outsider.status, 403);
        assert.match(errorMessage(outsider.body), /eve is not in an approver group \(dba\)/);

        const rec = await approval(hubB, id);
        assert.equal(rec.effectiveStatus, "pending");
        assert.deepEqual(rec.decisions, []);
        assert.deepEqual(await directRows(DB, "SELECT balance FROM accounts WHERE id = 1"), [{ balance: 150 }]);

        const no = await api(hubB.api, `/api/v1/approvals/${id}/deny`, dba, { method: "POST", body: {} });
        assert.equal(no.status, 200, JSON.stringify(no.body));
        await assert.rejects(update, refusedWith(/was denied/));
        assert.deepEqual(await directRows(DB, "SELECT balance FROM accounts WHERE id = 1"), [{ balance: 150 }]);
      } finally {
        await c.end();
      }
    });
  });

  describe("a client that leaves while its statement is held", () => {
    it("the statement never runs, even approved later, and the relay ends the session and its target connection", async () => {
      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      const update = held(c, "UPDATE accounts SET balance = 7 WHERE id = 2");
      const id = await pendingApproval(hubB.api, hubB.adminToken, /UPDATE accounts SET balance = 7 WHERE id = 2/);
      const sessionId = (await approval(hubB, id)).sessionId!;
      await c.end(); // Terminate, then close: the way a client that gives up leaves
      await assert.rejects(update);

      // An approver who answers after the client left does not make it run (whether or not the hub still takes the answer).
      // The hub closes the request when the session ends: approvers see it cancelled and cannot approve it.
      await eventually("the approval to be cancelled", async () =>
        (await approval(hubB, id)).effectiveStatus === "cancelled" ? true : undefined,
      );
      const late = await api(hubB.api, `/api/v1/approvals/${id}/approve`, dba, { method: "POST", body: {} });
      assert.equal(late.status, 409, JSON.stringify(late.body));
      assert.match(JSON.stringify(late.body), /already cancelled/);
      await sleep(500);
      assert.deepEqual(await directRows(DB, "SELECT balance FROM accounts WHERE id = 2"), [{ balance: 200 }]);

      const events = await sessionEvents(sessionId, (all) => all.some((e) => e.type === "session_end"));
      assert.ok(!events.some((e) => e.type === "result" && e.tag === "UPDATE 1"), "no result: it never ran");
      await eventually("the relay to close its connection to the target", async () => {
        const rows = await directRows<{ n: number }>(
          DB,
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        return rows[0]!.n === 0 ? true : undefined;
      });
    });
  });

  describe("cancel through another hub", () => {
    it("a CancelRequest that reaches hub B cancels the statement of a session opened on hub A", async () => {
      const raw = await RawClient.open(hubA.pgPort, "pg-main", agent, DB);
      try {
        raw.send(0x51, Buffer.from("SELECT pg_sleep(29)\0"));
        await runningOnTarget("SELECT pg_sleep(29)");
        await sendCancel(hubB.pgPort, raw.backendKey); // as a load balancer might route it
        const got = await raw.until(0x5a, 15_000);
        assert.equal(raw.errorOf(got)?.C, "57014");
      } finally {
        raw.close();
      }
    });
  });

  describe("vigil policy test", () => {
    /** `vigil policy test --json` through hub A's API, for agent-7 of group agents on pg-main. */
    async function policyTest(sql: string): Promise<{ effect: string; rule?: string }> {
      const proc = spawnVigil(
        "policy test",
        [
          "policy",
          "test",
          "--hub",
          hubA.api,
          "--connection",
          "pg-main",
          "--identity",
          "agent-7",
          "--groups",
          "agents",
          "--json",
          sql,
        ],
        { VIGIL_TOKEN: hubA.adminToken },
      );
      const { code } = await proc.exited;
      assert.equal(code, 0, proc.stderr);
      const out = JSON.parse(proc.stdout) as {
        connect: { granted: boolean };
        decision: { effect: string; rule?: string };
      };
      assert.equal(out.connect.granted, true);
      return out.decision;
    }

    interface Case {
      sql: string;
      effect: "allow" | "deny" | "review";
      rule?: string;
      /** What the session gets, and what the tables hold afterwards. */
      enforced(c: pg.Client): Promise<void>;
    }

    const refused = (c: pg.Client, sql: string, rule: string) =>
      assert.rejects(c.query(sql), refusedWith(new RegExp(rule.replace(/[/.]/g, "\\$&"))));

    const CASES: Case[] = [
      {
        sql: "SELECT id, balance FROM accounts ORDER BY id",
        effect: "allow",
        rule: "agents/allow-reads",
        async enforced(c) {
          const { rows } = await c.query(this.sql);
          assert.deepEqual(rows, await directRows(DB, this.sql));
          assert.equal(rows.length, 2);
        },
      },
      {
        sql: "UPDATE items SET name = 'renamed' WHERE id = 1",
        effect: "allow",
        async enforced(c) {
          assert.equal((await c.query(this.sql)).rowCount, 1);
          assert.deepEqual(await directRows(DB, "SELECT name FROM items WHERE id = 1"), [{ name: "renamed" }]);
        },
      },
      {
        sql: "DROP TABLE ledger",
        effect: "deny",
        rule: "agents/no-drop-table",
        async enforced(c) {
          await refused(c, this.sql, "agents/no-drop-table");
          assert.deepEqual(await directRows(DB, "SELECT to_regclass('public.ledger') IS NOT NULL AS present"), [
            { present: true },
          ]);
        },
      },
      {
        // Deny overrides review: review-ledger-writes matches too.
        sql: "DELETE FROM ledger",
        effect: "deny",
        rule: "agents/no-unbounded-delete",
        async enforced(c) {
          await refused(c, this.sql, "agents/no-unbounded-delete");
          assert.deepEqual(await directRows(DB, "SELECT count(*)::int AS n FROM ledger"), [{ n: 3 }]);
        },
      },
      {
        // One query string, one decision: the harmless first statement does not run either.
        sql: "UPDATE items SET name = 'sneaky' WHERE id = 2; DROP TABLE ledger",
        effect: "deny",
        rule: "agents/no-drop-table",
        async enforced(c) {
          await refused(c, this.sql, "agents/no-drop-table");
          assert.deepEqual(await directRows(DB, "SELECT name FROM items WHERE id = 2"), [{ name: "item 2" }]);
        },
      },
      {
        sql: "UPDATE accounts SET balance = balance - 1 WHERE id = 2",
        effect: "review",
        rule: "agents/review-account-updates",
        async enforced(c) {
          const before = await directRows(DB, "SELECT balance FROM accounts WHERE id = 2");
          const update = held(c, this.sql);
          const id = await pendingApproval(hubA.api, hubA.adminToken, /SET balance = balance - 1 WHERE id = 2/);
          assert.equal((await approval(hubA, id)).policy, "agents/review-account-updates");
          const no = await api(hubA.api, `/api/v1/approvals/${id}/deny`, dba, { method: "POST", body: {} });
          assert.equal(no.status, 200, JSON.stringify(no.body));
          await assert.rejects(update, refusedWith(/was denied \(rule agents\/review-account-updates\)/));
          assert.deepEqual(await directRows(DB, "SELECT balance FROM accounts WHERE id = 2"), before);
        },
      },
      {
        sql: "SELEC 1",
        effect: "deny",
        rule: "vigil/unparseable-command",
        async enforced(c) {
          await refused(c, this.sql, "vigil/unparseable-command");
          assert.equal((await c.query("SELECT 1 AS one")).rows[0].one, 1, "the session goes on");
        },
      },
    ];

    it("decides every statement as the relay enforces it: same effect, same rule", async () => {
      const predicted = await Promise.all(CASES.map((k) => policyTest(k.sql)));
      CASES.forEach((k, i) =>
        assert.deepEqual(
          { effect: predicted[i]!.effect, rule: predicted[i]!.rule },
          { effect: k.effect, rule: k.rule },
          `vigil policy test "${k.sql}"`,
        ),
      );

      const c = await pgClient(hubA.pgPort, "pg-main", agent, DB);
      try {
        await c.query("SELECT 'policy-test-agreement' AS marker");
        for (const k of CASES) await k.enforced(c);
      } finally {
        await c.end();
      }

      // The relay's own record of each decision, statement by statement.
      const marker = await eventually("the marker in the recording", () =>
        recordings(relayData()).find((e) => e.type === "command" && String(e.text).includes("policy-test-agreement")),
      );
      const events = await sessionEvents(String(marker.session), (all) =>
        all.some((e) => e.type === "command" && e.text === "SELEC 1"),
      );
      const judged = events.filter((e) => e.type === "command" && CASES.some((k) => k.sql === e.text));
      assert.deepEqual(
        judged.map((e) => ({ sql: e.text, effect: e.decision, rule: e.rule })),
        CASES.map((k, i) => ({ sql: k.sql, effect: predicted[i]!.effect, rule: predicted[i]!.rule })),
      );
    });
  });
});

describe("policy file edits reach running postgres sessions", function () {
  this.timeout(120_000);
  const DB = "vigil_reload";
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let agent: string;
  const policyFile = () => join(hub.policyDir, "test.yaml");

  const ALLOWING = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-drop-table
        effect: deny
        sql: { statements: [drop_table] }
`;
  const DENYING = `${ALLOWING}      - name: no-item-reads
        effect: deny
        sql: { statements: [select], tables: [items] }
`;
  // Drops the deny rule and breaks on line 11: were any of it applied, the read would be allowed again.
  const BROKEN = `${ALLOWING}      - name: half-written
        effect: allow
        sql: { statements: [select }
`;
  const READ = "SELECT name FROM items WHERE id = 1";

  before(async () => {
    await freshDatabase(DB, TABLES);
    hub = await startHubProcess(dir, { name: "hub-reload", policy: ALLOWING });
    relay = startRelayProcess(dir, {
      id: "pg-reload-relay",
      hub: hub.grpc,
      connections: [
        {
          name: "pg-main",
          type: "postgres",
          target: `127.0.0.1:${testServices().pg.port}`,
          credentials: relayCredentials(),
        },
      ],
    });
    await waitForRelay(hub, "pg-reload-relay");
    agent = await createToken(hub, hub.adminToken, "agent-9", ["agents"]);
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  /** Poll the same session until READ is refused by no-item-reads; returns how long that took. */
  async function untilRefused(c: pg.Client): Promise<number> {
    const from = Date.now();
    await eventually(
      "the edited policy to refuse the read",
      async () => {
        try {
          await c.query(READ);
          return undefined;
        } catch (err) {
          refusedWith(/agents\/no-item-reads/)(err as pg.DatabaseError);
          return true;
        }
      },
      10_000,
    );
    return Date.now() - from;
  }

  /** Poll the same session until READ runs again; returns the row. */
  function untilAllowed(c: pg.Client): Promise<{ name: string }> {
    return eventually("the policy to allow the read", async () => {
      try {
        return (await c.query(READ)).rows[0] as { name: string };
      } catch {
        return undefined;
      }
    });
  }

  it("a deny rule written to the file refuses the next statements of an open session within seconds", async () => {
    const c = await pgClient(hub.pgPort, "pg-main", agent, DB);
    try {
      const prepared = { name: "count-items", text: "SELECT count(*)::int AS n FROM items" };
      assert.equal((await c.query(prepared)).rows[0].n, 3);
      assert.equal((await c.query(READ)).rows[0].name, "item 1");

      writeFileSync(policyFile(), DENYING);
      const took = await untilRefused(c);
      assert.ok(took < 5000, `the edit took ${took} ms to reach the session`);
      // Prepared under the old policy, judged under the new one when it runs.
      await assert.rejects(c.query(prepared), refusedWith(/agents\/no-item-reads/));
      assert.equal((await c.query("SELECT 1 AS one")).rows[0].one, 1, "the session goes on");
      await hub.proc.waitFor(/policy update sent to running session/);
    } finally {
      await c.end();
    }
  });

  it("a broken edit keeps the last good policy and the hub logs file:line; the next good edit applies", async () => {
    const c = await pgClient(hub.pgPort, "pg-main", agent, DB);
    try {
      writeFileSync(policyFile(), DENYING);
      await untilRefused(c);

      const logFrom = hub.proc.stderr.length;
      writeFileSync(policyFile(), BROKEN);
      const logged = await eventually("the reload error in the hub's log", () =>
        hub.proc.stderr
          .slice(logFrom)
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { msg?: string; err?: string; level?: number })
          .find((l) => l.msg === "policy reload failed; keeping the last good policies"),
      );
      assert.equal(logged.level, 50, "logged as an error");
      assert.ok(
        logged.err?.startsWith(`${policyFile()}:11: `),
        `the error names the file and the broken line (11): ${logged.err}`,
      );
      // The last good policy stays in force: the read keeps being refused, everything else runs.
      for (let i = 0; i < 4; i++) {
        await assert.rejects(c.query(READ), refusedWith(/agents\/no-item-reads/));
        await sleep(250);
      }
      assert.equal((await c.query("SELECT count(*)::int AS n FROM accounts")).rows[0].n, 2);

      // The watch survived the broken edit: the next good version applies to the same session.
      writeFileSync(policyFile(), ALLOWING);
      assert.equal((await untilAllowed(c)).name, "item 1");
    } finally {
      await c.end();
    }
  });

  it("a file caught empty in the middle of a rewrite does not revoke running sessions", async () => {
    writeFileSync(policyFile(), ALLOWING);
    const c = await pgClient(hub.pgPort, "pg-main", agent, DB);
    const ended: Error[] = [];
    c.on("error", (err) => ended.push(err));
    try {
      assert.equal((await untilAllowed(c)).name, "item 1");
      const logFrom = hub.proc.stderr.length;
      writeFileSync(policyFile(), ""); // truncated; the rest comes later than the reload's debounce
      await eventually("the hub to notice the empty file", () =>
        /policy file is empty/.test(hub.proc.stderr.slice(logFrom)) ? true : undefined,
      );
      await sleep(500);
      writeFileSync(policyFile(), DENYING);
      await untilRefused(c);
      assert.deepEqual(ended, [], "the session was never ended");
      assert.equal((await c.query("SELECT count(*)::int AS n FROM accounts")).rows[0].n, 2);
    } finally {
      await c.end();
    }
  });
});
