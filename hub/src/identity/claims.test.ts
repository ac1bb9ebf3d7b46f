import assert from "node:assert/strict";
import { VigilError } from "../../../lib/errors.js";
import { claim, groupsFrom, usernameFrom } from "./claims.js";

describe("OIDC claim mapping", () => {
  it("groups come from an array, or a space- or comma-separated string", () => {
    assert.deepEqual(groupsFrom(["a", "b", 3, ""]), ["a", "b"]);
    assert.deepEqual(groupsFrom("a b,c, d"), ["a", "b", "c", "d"]);
    assert.deepEqual(groupsFrom(undefined), []);
  });

  it("an exact claim name wins; otherwise a dotted name walks nested objects", () => {
    const payload = { "https://example.com/groups": ["x"], realm_access: { roles: ["admin"] } };
    assert.deepEqual(claim(payload, "https://example.com/groups"), ["x"]);
    assert.deepEqual(claim(payload, "realm_access.roles"), ["admin"]);
    assert.equal(claim(payload, "realm_access.missing.deeper"), undefined);
  });

  it("a missing username claim is refused, naming the claim", () => {
    assert.equal(usernameFrom({ email: "a@example.test" }, "email"), "a@example.test");
    assert.throws(
      () => usernameFrom({ sub: "x" }, "preferred_username"),
      (err) => err instanceof VigilError && err.code === "bad_token" && /"preferred_username"/.test(err.message),
    );
  });
});
