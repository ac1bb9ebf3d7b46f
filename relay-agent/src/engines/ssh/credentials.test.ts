import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "../../../../lib/config/schema.js";
import { generateHostKey } from "../../../../lib/ssh/host-key.js";
import { sshCredentials } from "./credentials.js";

const conn = (credentials: Record<string, unknown>): Connection => ({
  name: "web-1",
  type: "ssh",
  target: "10.0.0.5:22",
  credentials,
  labels: {},
});

describe("ssh connection credentials", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-ssh-creds-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a private key file, or a password from the config or the environment", () => {
    const keyFile = join(dir, "id");
    writeFileSync(keyFile, generateHostKey());
    assert.match(sshCredentials(conn({ user: "deploy", privateKeyFile: keyFile })).privateKey!, /OPENSSH PRIVATE KEY/);
    assert.equal(sshCredentials(conn({ user: "deploy", password: "pw" })).password, "pw");
    process.env.VIGIL_TEST_SSH_PW = "from-env";
    assert.equal(sshCredentials(conn({ user: "deploy", passwordEnv: "VIGIL_TEST_SSH_PW" })).password, "from-env");
  });

  it("refuses none or several secrets, unreadable keys, unset variables and unknown keys, naming the key", () => {
    const fails = (c: Record<string, unknown>, re: RegExp) => assert.throws(() => sshCredentials(conn(c)), re);
    fails({ user: "deploy" }, /set exactly one of privateKeyFile, password, passwordEnv/);
    fails({ user: "deploy", password: "a", passwordEnv: "B" }, /got password, passwordEnv/);
    fails({ user: "deploy", privateKeyFile: join(dir, "missing") }, /credentials\.privateKeyFile: cannot read/);
    fails({ user: "deploy", passwordEnv: "VIGIL_TEST_UNSET_VAR" }, /credentials\.passwordEnv/);
    fails({ user: "deploy", password: "secret-value", sslmode: "x" }, /sslmode/);
    assert.throws(
      () => sshCredentials(conn({ user: "deploy", password: "secret-value", sslmode: "x" })),
      (err: Error) => !err.message.includes("secret-value"),
    );
  });
});
