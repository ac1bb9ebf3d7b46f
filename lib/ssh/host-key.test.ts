import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ssh2 from "ssh2";
import { generateHostKey, loadOrCreateSshHostKey } from "./host-key.js";

describe("ssh host keys", () => {
  it("every generated key parses (ssh2 alone gets about one in 256 wrong)", () => {
    // 2000 draws: with the bug, the chance that none is malformed is (255/256)^2000 ≈ 0.04%.
    for (let i = 0; i < 2000; i++) {
      const parsed = ssh2.utils.parseKey(generateHostKey());
      assert.ok(!(parsed instanceof Error), parsed instanceof Error ? parsed.message : "");
    }
  });

  it("creates the key once (mode 0600) and loads the same one after", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-hostkey-"));
    try {
      const file = join(dir, "sub", "host.key");
      const first = loadOrCreateSshHostKey(file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.match(first.publicKey, /^ssh-ed25519 AAAA/);
      assert.deepEqual(loadOrCreateSshHostKey(file), first);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
