import assert from "node:assert/strict";
import { SignJWT, UnsecuredJWT } from "jose";
import { VigilError } from "../../../lib/errors.js";
import { generateKey } from "../../../lib/keys.js";
import { LocalTokens } from "./local-tokens.js";

describe("local tokens", () => {
  const key = generateKey();
  const tokens = new LocalTokens(key, "vigil", "vigil");

  async function refusal(token: string): Promise<string> {
    try {
      await tokens.verify(token);
    } catch (err) {
      assert.ok(err instanceof VigilError);
      assert.equal(err.code, "bad_token");
      return err.message;
    }
    assert.fail("token was accepted");
  }

  const signed = (claims: Record<string, unknown>, build: (j: SignJWT) => SignJWT, signer = key.privateKey) =>
    build(
      new SignJWT(claims)
        .setProtectedHeader({ alg: "EdDSA" })
        .setSubject("bot")
        .setJti("j1")
        .setIssuer("vigil")
        .setAudience("vigil"),
    ).sign(signer);

  it("round-trips subject and groups", async () => {
    const { token, expiresAt } = await tokens.issue("ci-bot", ["ci", "deploy"], 3600);
    const id = await tokens.verify(token);
    assert.equal(id.subject, "ci-bot");
    assert.deepEqual(id.groups, ["ci", "deploy"]);
    assert.equal(id.expiresAt?.getTime(), expiresAt.getTime());
  });

  it("refuses each bad token with a precise reason", async () => {
    assert.equal(
      await refusal(await signed({}, (j) => j.setExpirationTime(Math.floor(Date.now() / 1000) - 120))),
      "token expired",
    );
    assert.match(await refusal(await signed({}, (j) => j.setAudience("other").setExpirationTime("1h"))), /claim "aud"/);
    assert.match(await refusal(await signed({}, (j) => j.setIssuer("evil").setExpirationTime("1h"))), /claim "iss"/);
    assert.equal(
      await refusal(await signed({}, (j) => j.setExpirationTime("1h"), generateKey().privateKey)),
      "token signature does not verify",
    );
    const none = new UnsecuredJWT({})
      .setSubject("bot")
      .setJti("j")
      .setIssuer("vigil")
      .setAudience("vigil")
      .setExpirationTime("1h")
      .encode();
    assert.match(await refusal(none), /algorithm|malformed/);
    assert.equal(await refusal("garbage"), "token is malformed");
    assert.match(await refusal(await signed({}, (j) => j)), /exp/); // no expiry at all
  });
});
