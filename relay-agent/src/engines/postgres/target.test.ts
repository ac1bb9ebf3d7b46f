// The relay's login to real PostgreSQL 15 servers: the shared SCRAM one (no TLS) and one of our own
// with MD5, trust and cleartext users and a TLS certificate from a throwaway CA.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { TLSSocket } from "node:tls";
import pg from "pg";
import { serialize } from "pg-protocol";
import type { DatabaseError, DataRowMessage } from "pg-protocol/dist/messages.js";
import { Parser } from "pg-protocol/dist/parser.js";
import { VigilError } from "../../../../lib/errors.js";
import { testServices } from "../../../../test/support/env.js";
import { freePort, run, startPostgres, type PostgresHandle } from "../../../../test/support/services.js";
import { eventually } from "../../../../test/support/vigil.js";
import type { PostgresCredentials } from "./credentials.js";
import { cancelTarget, connectTarget, type ConnectTargetOptions, type TargetConnection } from "./target.js";

interface QueryResult {
  rows: (string | null)[][];
  errorCode?: string;
}

/**
 * Sends a simple Query on the connection and collects rows (or the error) up to ReadyForQuery.
 * Only attaches a 'data' listener, as the engine does: the handed-over socket must start flowing then.
 */
function query(conn: TargetConnection, sql: string): Promise<QueryResult> {
  const { socket } = conn;
  return new Promise((resolve, reject) => {
    const parser = new Parser();
    const result: QueryResult = { rows: [] };
    const onData = (chunk: Buffer): void =>
      parser.parse(chunk, (message) => {
        if (message.name === "dataRow") result.rows.push((message as DataRowMessage).fields as (string | null)[]);
        if (message.name === "error") result.errorCode = (message as DatabaseError).code;
        if (message.name !== "readyForQuery") return;
        socket.off("data", onData).off("error", reject);
        resolve(result);
      });
    socket.on("data", onData).once("error", reject);
    const leftover = conn.leftover;
    conn.leftover = Buffer.alloc(0);
    if (leftover.length > 0) onData(leftover);
    socket.write(serialize.query(sql));
  });
}

function close(conn: TargetConnection | undefined): void {
  conn?.socket.end(serialize.end());
}

/** Node's sockets listen to some of their own events; anything beyond that is ours, left behind. */
function assertNoListenersLeft(socket: Duplex): void {
  const fresh = socket instanceof TLSSocket ? new TLSSocket(new Socket()) : new Socket();
  for (const event of ["data", "readable", "error", "end", "close"]) {
    assert.ok(socket.listenerCount(event) <= fresh.listenerCount(event), `a listener for ${event} is left`);
  }
  fresh.destroy();
}

/** Expects the login to fail with a VigilError of `code`; returns it for further checks. */
async function refused(attempt: Promise<TargetConnection>, code: VigilError["code"]): Promise<VigilError> {
  let error: unknown;
  try {
    close(await attempt);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof VigilError, `expected a VigilError, got ${String(error)}`);
  assert.equal(error.code, code, error.message);
  return error;
}

/** Runs pg_sleep(30) on `conn`, cancels it once it runs, and expects query_canceled within seconds. */
async function cancelsSleep(
  conn: TargetConnection,
  admin: pg.ClientConfig,
  cancel: () => Promise<void>,
): Promise<void> {
  const client = new pg.Client({ ...admin, database: "postgres" });
  await client.connect();
  try {
    const running = query(conn, "SELECT pg_sleep(30)");
    // A cancel that arrives before the query starts would be lost.
    await eventually("the query to run", async () => {
      const sql = "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'";
      return (await client.query(sql, [conn.backendKey.pid])).rowCount === 1 ? true : undefined;
    });
    const started = Date.now();
    await cancel();
    assert.deepEqual(await running, { rows: [], errorCode: "57014" });
    assert.ok(Date.now() - started < 5_000, "the cancel took effect late");
  } finally {
    await client.end();
  }
}

/** A throwaway CA, a second unrelated CA, and a server certificate for DNS:localhost only. */
async function makeCerts(dir: string): Promise<{ ca: string; otherCa: string; cert: string; key: string }> {
  const openssl = async (...args: string[]): Promise<void> => {
    const result = await run("openssl", args, { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
  };
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const newCa = (name: string) =>
    openssl(
      "req",
      "-x509",
      ...newKey,
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
    );
  await Promise.all([newCa("ca"), newCa("other-ca")]);
  await openssl("req", ...newKey, "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr");
  // No IP address in the certificate, so that 127.0.0.1 passes verify-ca but fails verify-full.
  await writeFile(join(dir, "san.ext"), "subjectAltName=DNS:localhost\n");
  await openssl(
    ...["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
    ...["-days", "1", "-extfile", "san.ext", "-out", "server.pem"],
  );
  const file = (name: string) => join(dir, name);
  return { ca: file("ca.pem"), otherCa: file("other-ca.pem"), cert: file("server.pem"), key: file("server.key") };
}

describe("postgres target login", function () {
  this.timeout(60_000);

  describe("against the shared SCRAM server (no TLS)", () => {
    let address: string;
    let credentials: PostgresCredentials;
    let opts: ConnectTargetOptions;

    before(() => {
      const { pg: shared } = testServices();
      address = `${shared.host}:${shared.port}`;
      credentials = { user: shared.user, password: shared.password, sslmode: "disable" };
      opts = { address, credentials, database: "postgres" };
    });

    it("logs in with SCRAM-SHA-256 and reports the server's status", async () => {
      const conn = await connectTarget(opts);
      try {
        assert.equal(conn.tls, false);
        assert.equal(conn.transactionStatus, "I");
        assert.match(conn.parameters.server_version ?? "", /^15\./);
        assert.equal(conn.parameters.client_encoding, "UTF8");
        assert.ok(conn.backendKey.pid > 0);
        assert.equal(conn.backendKey.secret.length, 4);
        assert.equal(conn.leftover.length, 0);
        assertNoListenersLeft(conn.socket);
      } finally {
        close(conn);
      }
    });

    it("hands back a socket a query runs on, as the logged-in session", async () => {
      const conn = await connectTarget(opts);
      try {
        // The engine takes the socket over only once the client's tunnel is up.
        await sleep(100);
        const result = await query(conn, "SELECT current_user, pg_backend_pid()::text, 6 * 7");
        assert.deepEqual(result, { rows: [["postgres", String(conn.backendKey.pid), "42"]] });
      } finally {
        close(conn);
      }
    });

    it("passes the client's startup parameters on, client_encoding included", async () => {
      const params = { application_name: "vigil-test", client_encoding: "LATIN1", DateStyle: "German" };
      const conn = await connectTarget({ ...opts, params });
      try {
        assert.equal(conn.parameters.application_name, "vigil-test");
        assert.equal(conn.parameters.client_encoding, "LATIN1");
        assert.match(conn.parameters.DateStyle ?? "", /^German/);
      } finally {
        close(conn);
      }
    });

    it("falls back to plain under sslmode prefer when the server has no TLS", async () => {
      const conn = await connectTarget({ ...opts, credentials: { ...credentials, sslmode: "prefer" } });
      try {
        assert.equal(conn.tls, false);
        assert.deepEqual((await query(conn, "SELECT 1")).rows, [["1"]]);
      } finally {
        close(conn);
      }
    });

    it("fails under sslmode require when the server has no TLS", async () => {
      const error = await refused(
        connectTarget({ ...opts, credentials: { ...credentials, sslmode: "require" } }),
        "target_unreachable",
      );
      assert.equal(
        error.message,
        `cannot reach ${address}: the server does not accept TLS, which sslmode require demands`,
      );
    });

    it("reports refused credentials without the user name or the password", async () => {
      const wrong = { ...credentials, password: "not-the-password-0xdeadbeef" };
      for (const creds of [wrong, { ...credentials, user: "no_such_role_x" }]) {
        const error = await refused(connectTarget({ ...opts, credentials: creds }), "target_refused");
        assert.equal(error.message, "the target refused the relay's credentials for this connection");
        assert.equal(error.nativeCode, "08004");
        // The target's own words stay with the relay, as the cause.
        assert.match((error.cause as DatabaseError).code ?? "", /^28(P01|000)$/);
      }
    });

    it("keeps an unknown database's SQLSTATE and message", async () => {
      const error = await refused(connectTarget({ ...opts, database: "no_such_db" }), "target_refused");
      assert.equal(error.nativeCode, "3D000");
      assert.equal(error.message, 'database "no_such_db" does not exist');
    });

    it("reports a closed port as target_unreachable", async () => {
      const port = await freePort();
      const error = await refused(connectTarget({ ...opts, address: `127.0.0.1:${port}` }), "target_unreachable");
      assert.match(error.message, new RegExp(`^cannot reach 127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
    });

    it("cancels a running query over a new connection", async () => {
      const conn = await connectTarget(opts);
      try {
        await cancelsSleep(conn, testServices().pg, () =>
          cancelTarget({ address, credentials, backendKey: conn.backendKey }),
        );
      } finally {
        close(conn);
      }
    });
  });

  describe("against a server with TLS, MD5, trust and cleartext users", () => {
    let dir: string;
    let server: PostgresHandle;
    let certs: Awaited<ReturnType<typeof makeCerts>>;
    const clearPassword = `clear-${Date.now()}`;
    const at = (host: string) => `${host}:${server.port}`;
    const md5 = (sslmode: PostgresCredentials["sslmode"], more: Partial<PostgresCredentials> = {}) => ({
      user: "postgres",
      password: server.password,
      sslmode,
      ...more,
    });

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "vigil-pgtls-"));
      certs = await makeCerts(dir);
      server = await startPostgres({
        scram: false,
        ssl: { cert: certs.cert, key: certs.key },
        hba: ["host all trusted 127.0.0.1/32 trust", "host all clear 127.0.0.1/32 password"],
      });
      const admin = new pg.Client({
        host: server.socketDir,
        port: server.port,
        user: "postgres",
        database: "postgres",
      });
      await admin.connect();
      await admin.query(`CREATE ROLE trusted LOGIN; CREATE ROLE clear LOGIN PASSWORD '${clearPassword}'`);
      await admin.end();
    });

    after(async () => {
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("logs in with MD5", async () => {
      const conn = await connectTarget({ address: at("127.0.0.1"), credentials: md5("disable"), database: "postgres" });
      try {
        assert.equal(conn.tls, false);
        assert.deepEqual((await query(conn, "SELECT current_user")).rows, [["postgres"]]);
      } finally {
        close(conn);
      }
    });

    it("logs in where the target trusts the relay's user, without a password", async () => {
      const credentials: PostgresCredentials = { user: "trusted", sslmode: "disable" };
      const conn = await connectTarget({ address: at("127.0.0.1"), credentials, database: "postgres" });
      try {
        assert.deepEqual((await query(conn, "SELECT current_user")).rows, [["trusted"]]);
      } finally {
        close(conn);
      }
    });

    it("sends a cleartext password over TLS", async () => {
      const credentials: PostgresCredentials = { user: "clear", password: clearPassword, sslmode: "require" };
      const conn = await connectTarget({ address: at("127.0.0.1"), credentials, database: "postgres" });
      try {
        assert.equal(conn.tls, true);
        assert.deepEqual((await query(conn, "SELECT current_user")).rows, [["clear"]]);
      } finally {
        close(conn);
      }
    });

    it("uses TLS under prefer and require, and the session runs over it", async () => {
      for (const sslmode of ["prefer", "require"] as const) {
        const conn = await connectTarget({ address: at("127.0.0.1"), credentials: md5(sslmode), database: "postgres" });
        try {
          assert.equal(conn.tls, true);
          assert.equal(conn.leftover.length, 0);
          assertNoListenersLeft(conn.socket);
          assert.deepEqual((await query(conn, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).rows, [
            ["true"],
          ]);
        } finally {
          close(conn);
        }
      }
    });

    it("verifies the certificate and the host name under verify-full", async () => {
      const credentials = md5("verify-full", { sslrootcert: certs.ca });
      const conn = await connectTarget({ address: at("localhost"), credentials, database: "postgres" });
      try {
        assert.equal(conn.tls, true);
        assert.deepEqual((await query(conn, "SELECT 1")).rows, [["1"]]);
      } finally {
        close(conn);
      }
      const error = await refused(
        connectTarget({ address: at("127.0.0.1"), credentials, database: "postgres" }),
        "target_unreachable",
      );
      assert.match(error.message, /TLS handshake failed: .*IP: 127\.0\.0\.1 is not in the cert's list/);
    });

    it("verifies the chain but not the host name under verify-ca", async () => {
      const credentials = md5("verify-ca", { sslrootcert: certs.ca });
      const conn = await connectTarget({ address: at("127.0.0.1"), credentials, database: "postgres" });
      close(conn);
      assert.equal(conn.tls, true);
    });

    it("fails when the certificate does not lead to sslrootcert", async () => {
      for (const sslmode of ["verify-ca", "verify-full"] as const) {
        const credentials = md5(sslmode, { sslrootcert: certs.otherCa });
        const error = await refused(
          connectTarget({ address: at("localhost"), credentials, database: "postgres" }),
          "target_unreachable",
        );
        assert.match(error.message, /^cannot reach localhost:\d+: TLS handshake failed: /);
      }
    });

    it("cancels a running query over TLS", async () => {
      const credentials = md5("require");
      const conn = await connectTarget({ address: at("127.0.0.1"), credentials, database: "postgres" });
      try {
        await cancelsSleep(conn, { host: server.socketDir, port: server.port, user: "postgres" }, () =>
          cancelTarget({ address: at("127.0.0.1"), credentials, backendKey: conn.backendKey }),
        );
      } finally {
        close(conn);
      }
    });
  });
});
