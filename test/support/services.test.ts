// Proves the harness: the shared servers are real, reachable and configured as promised.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import pg from "pg";
import { testServices } from "./env.js";
import { canConnect, run, sshClientArgs, startNats, startPostgres } from "./services.js";

interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

async function withClient<T>(target: PgTarget, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...target, database: "postgres" });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function queryOne(target: PgTarget, sql: string): Promise<unknown> {
  return withClient(target, async (client) => Object.values((await client.query(sql)).rows[0] ?? {})[0]);
}

/** Reads the first line a NATS server sends on connect. */
function natsInfoLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      const end = received.indexOf("\r\n");
      if (end < 0) return;
      socket.destroy();
      resolve(received.slice(0, end));
    });
    socket.once("error", reject);
  });
}

function parseInfo(line: string): Record<string, unknown> {
  assert.match(line, /^INFO \{/);
  return JSON.parse(line.slice("INFO ".length)) as Record<string, unknown>;
}

describe("test harness services", () => {
  describe("PostgreSQL", () => {
    it("accepts node-postgres over SCRAM-SHA-256", async () => {
      const { pg: target } = testServices();
      assert.match(String(await queryOne(target, "select version()")), /^PostgreSQL 15\./);
      const stored = await queryOne(target, "select rolpassword from pg_authid where rolname = 'postgres'");
      assert.match(String(stored), /^SCRAM-SHA-256\$/);
      const tcpAuth = await queryOne(target, "select auth_method from pg_hba_file_rules where type = 'host'");
      assert.equal(tcpAuth, "scram-sha-256");
    });

    it("accepts the published connection URL", async () => {
      const client = new pg.Client({ connectionString: testServices().pg.url });
      await client.connect();
      try {
        assert.equal((await client.query<{ one: number }>("select 1 as one")).rows[0]?.one, 1);
      } finally {
        await client.end();
      }
    });

    it("refuses a wrong password with SQLSTATE 28P01", async () => {
      const { pg: target } = testServices();
      await assert.rejects(queryOne({ ...target, password: `${target.password}x` }, "select 1"), { code: "28P01" });
    });

    it("answers the psql CLI", async () => {
      const { pg: target } = testServices();
      const args = [
        "-X",
        "-h",
        target.host,
        "-p",
        String(target.port),
        "-U",
        target.user,
        "-d",
        "postgres",
        "-tAc",
        "select 40 + 2",
      ];
      const result = await run("psql", args, { env: { ...process.env, PGPASSWORD: target.password } });
      assert.equal(result.stderr, "");
      assert.equal(result.stdout, "42\n");
      assert.equal(result.code, 0);
    });

    it("starts and stops a second, independent instance (MD5, chosen password)", async () => {
      const second = await startPostgres({ scram: false, password: 'it\'s a "secret"' });
      try {
        assert.notEqual(second.port, testServices().pg.port);
        const stored = await queryOne(second, "select rolpassword from pg_authid where rolname = 'postgres'");
        assert.match(String(stored), /^md5/);
      } finally {
        await second.stop();
      }
      assert.equal(await canConnect(second.port), false);
      assert.equal(existsSync(second.dataDir), false);
      assert.match(String(await queryOne(testServices().pg, "select version()")), /^PostgreSQL/);
    });
  });

  describe("NATS", () => {
    it("announces JetStream in its INFO line", async () => {
      const port = Number(new URL(testServices().nats.url).port);
      const info = parseInfo(await natsInfoLine(port));
      assert.equal(info["jetstream"], true);
    });

    it("survives kill() and restart() on the same port, keeping the store dir", async () => {
      const nats = await startNats();
      try {
        await nats.kill();
        assert.equal(await canConnect(nats.port), false);
        assert.equal(existsSync(nats.storeDir), true);
        await nats.restart();
        assert.equal(parseInfo(await natsInfoLine(nats.port))["jetstream"], true);
      } finally {
        await nats.stop();
      }
      assert.equal(existsSync(nats.storeDir), false);
    });
  });

  describe("sshd", () => {
    it("runs a command for the authorised key", async () => {
      const { sshd } = testServices();
      const result = await run("ssh", sshClientArgs(sshd, "echo", "hello"));
      assert.equal(result.stdout, "hello\n");
      assert.equal(result.code, 0);
    });

    it("publishes its ed25519 host key", () => {
      assert.match(testServices().sshd.hostPublicKey, /^ssh-ed25519 AAAA/);
    });
  });
});
