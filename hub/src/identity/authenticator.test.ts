import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT, UnsecuredJWT } from "jose";
import { VigilError } from "../../../lib/errors.js";
import { generateKey } from "../../../lib/keys.js";
import { Authenticator } from "./authenticator.js";
import { LocalTokens } from "./local-tokens.js";
import { SessionTokens } from "./sessions.js";
import { FileTokenStore } from "./token-store.js";

describe("authenticator", () => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-auth-"));
  const store = new FileTokenStore(join(dir, "tokens.json"));
  const key = generateKey();
  const local = new LocalTokens(key, "vigil", "vigil", store);
  const sessions = new SessionTokens(key, "vigil", store);
  const auth = new Authenticator(local, ["vigil-admins"], { sessions });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function refusal(p: Promise<unknown>): Promise<string> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof VigilError && err.code === "bad_token", String(err));
      return err.message;
    }
    assert.fail("accepted");
  }

  it("chooses the verifier by issuer, and names what it refuses", async () => {
    const { token } = await local.issue("bot", ["ci"], 60);
    assert.equal((await auth.verifyBearer(`Bearer ${token}`)).subject, "bot");
    const claims = { sub: "x", aud: "vigil", exp: Math.floor(Date.now() / 1000) + 60 };
    assert.equal(
      await refusal(auth.verify(new UnsecuredJWT({ ...claims, iss: "vigil" }).encode())),
      'token algorithm "none" is not allowed',
    );
    const foreign = await new SignJWT({ ...claims, iss: "https://idp.example" })
      .setProtectedHeader({ alg: "EdDSA" })
      .sign(generateKey().privateKey);
    assert.equal(await refusal(auth.verify(foreign)), 'token issuer "https://idp.example" is not trusted');
    const noIssuer = await new SignJWT(claims).setProtectedHeader({ alg: "EdDSA" }).sign(key.privateKey);
    assert.equal(await refusal(auth.verify(noIssuer)), "token has no issuer (iss)");
    assert.equal(await refusal(auth.verify("opaque-but-nobody-to-ask")), "token is malformed");
    assert.equal(await refusal(auth.verifyBearer(undefined)), "missing Authorization: Bearer token");
  });

  it("refuses a revoked token by id, with no I/O on the way", async () => {
    const { token, id } = await local.issue("bot", [], 60);
    await local.revoke(id, "admin");
    assert.equal(await refusal(auth.verify(token)), `token ${id} has been revoked`);
  });

  it("a session cookie is accepted as a session only, and not after it ended", async () => {
    const { token } = await sessions.issue({ subject: "alice", groups: ["dev"], issuer: "https://idp.example" }, 60);
    assert.match(await refusal(auth.verify(token)), /claim "aud"/);
    const identity = await auth.verifySession(token);
    assert.deepEqual([identity.subject, identity.issuer], ["alice", "https://idp.example"]);
    await sessions.end(identity);
    assert.equal(await refusal(auth.verifySession(token)), "session has ended (logged out)");
  });
});
