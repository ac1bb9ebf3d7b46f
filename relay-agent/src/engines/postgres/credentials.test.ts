import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "../../../../lib/config/schema.js";
import { postgresCredentials } from "./credentials.js";

const SECRET = "s3cret-Value";

function connection(credentials: Record<string, unknown> | undefined): Connection {
  return { name: "orders", type: "postgres", target: "db:5432", credentials, labels: {} };
}

function rejects(credentials: Record<string, unknown> | undefined, message: RegExp): void {
  assert.throws(
    () => postgresCredentials(connection(credentials)),
    (error: Error) => {
      assert.match(error.message, /^config: relay connection "orders": /);
      assert.match(error.message, message);
      assert.doesNotMatch(error.message, new RegExp(SECRET));
      return true;
    },
  );
}

describe("postgres credentials", () => {
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "vigil-pgcreds-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("takes user and password, with sslmode prefer by default", () => {
    assert.deepEqual(postgresCredentials(connection({ user: "relay", password: SECRET })), {
      user: "relay",
      password: SECRET,
      database: undefined,
      sslmode: "prefer",
      sslrootcert: undefined,
    });
  });

  it("allows no password at all (trust, or a target that never asks)", () => {
    assert.equal(postgresCredentials(connection({ user: "relay", sslmode: "disable" })).password, undefined);
  });

  it("reads passwordFile without its trailing newline only", () => {
    const file = join(dir, "pw");
    writeFileSync(file, ` ${SECRET} \n`);
    assert.equal(postgresCredentials(connection({ user: "relay", passwordFile: file })).password, ` ${SECRET} `);
    writeFileSync(file, `${SECRET}\r\n`);
    assert.equal(postgresCredentials(connection({ user: "relay", passwordFile: file })).password, SECRET);
  });

  it("reads passwordEnv, which must be set", () => {
    process.env.VIGIL_TEST_PG_CRED = SECRET;
    try {
      const creds = postgresCredentials(connection({ user: "relay", passwordEnv: "VIGIL_TEST_PG_CRED" }));
      assert.equal(creds.password, SECRET);
    } finally {
      delete process.env.VIGIL_TEST_PG_CRED;
    }
    rejects({ user: "relay", passwordEnv: "VIGIL_TEST_PG_CRED" }, /credentials\.passwordEnv: .*VIGIL_TEST_PG_CRED/);
  });

  it("names the bad key and never echoes the password", () => {
    rejects(undefined, /credentials\.user: required/);
    rejects({ password: SECRET }, /credentials\.user: required/);
    rejects({ user: "relay", password: 12345, sslmode: "disable" }, /credentials\.password: expected string$/);
    rejects({ user: "relay", pasword: SECRET }, /credentials\.pasword: unknown key/);
    rejects({ user: "relay", sslmode: "allow" }, /credentials\.sslmode: expected one of disable, prefer, require/);
    rejects(
      { user: "relay", password: SECRET, passwordEnv: "X" },
      /credentials: set at most one of password, passwordFile, passwordEnv \(got password, passwordEnv\)/,
    );
    rejects({ user: "relay", passwordFile: join(dir, "missing") }, /credentials\.passwordFile: cannot read .*ENOENT/);
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    rejects({ user: "relay", passwordFile: empty }, /credentials\.passwordFile: .* is empty/);
  });

  it("takes sslrootcert for verify-ca/verify-full only, and checks it holds a certificate", () => {
    const ca = join(dir, "ca.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const creds = postgresCredentials(connection({ user: "relay", sslmode: "verify-full", sslrootcert: ca }));
    assert.equal(creds.sslrootcert, ca);
    rejects({ user: "relay", sslmode: "require", sslrootcert: ca }, /sslrootcert: only applies to sslmode verify-ca/);
    rejects({ user: "relay", sslmode: "verify-ca", sslrootcert: join(dir, "nope.pem") }, /cannot read .*ENOENT/);
    const notPem = join(dir, "not.pem");
    writeFileSync(notPem, "hello");
    rejects({ user: "relay", sslmode: "verify-ca", sslrootcert: notPem }, /holds no PEM certificate/);
  });
});
