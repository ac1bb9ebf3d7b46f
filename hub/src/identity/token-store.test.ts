import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileTokenStore } from "./token-store.js";

describe("file token store", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-tokens-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tokens.json");
  const later = () => new Date(Date.now() + 3600_000).toISOString();

  it("records, revokes and reloads; a revocation of an unknown id is kept too", async () => {
    const store = new FileTokenStore(file);
    await store.record({ id: "t1", kind: "token", subject: "bot", groups: ["ci"], expiresAt: later() });
    assert.equal(store.isRevoked("t1"), false);
    const revoked = await store.revoke("t1", "admin", { kind: "token", subject: "", groups: [], expiresAt: later() });
    assert.equal(revoked.subject, "bot");
    assert.equal(revoked.revokedBy, "admin");
    await store.revoke("offline-1", "admin", { kind: "token", subject: "", groups: [], expiresAt: later() });
    await store.close();

    const reloaded = new FileTokenStore(file);
    assert.equal(reloaded.isRevoked("t1"), true);
    assert.equal(reloaded.isRevoked("offline-1"), true);
    assert.equal(reloaded.isRevoked("t2"), false);
    assert.ok(!readFileSync(file, "utf8").includes("eyJ"), "no token is stored");
    await reloaded.close();
  });

  it("drops records once their token has expired", async () => {
    const store = new FileTokenStore(file);
    const past = new Date(Date.now() - 3600_000).toISOString();
    await store.revoke("old", "admin", { kind: "token", subject: "", groups: [], expiresAt: past });
    await store.close();
    const reloaded = new FileTokenStore(file);
    assert.equal(reloaded.isRevoked("old"), false);
    assert.ok(reloaded.list().every((r) => r.id !== "old"));
    await reloaded.close();
  });
});
