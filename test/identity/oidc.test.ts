import assert from "node:assert/strict";
import { generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { api, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  dial,
  echoRoundTrip,
  startConnect,
  startHubProcess,
  startRelayProcess,
  type HubHandle,
  waitForRelay,
} from "../support/mesh.js";
import { startIdp, trustIdp, type TestIdp } from "./idp.js";

/** The hub's audit lines (JSON logs on stderr) with `audit: auth.refused`. */
function refusals(hub: HubHandle): { reason: string; issuer?: string; subject?: string; via: string }[] {
  return hub.proc.stderr
    .split("\n")
    .filter((l) => l.includes('"auth.refused"'))
    .map((l) => JSON.parse(l) as { reason: string; issuer?: string; subject?: string; via: string });
}

describe("OIDC tokens at a real hub", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let idp: TestIdp;
  let stranger: TestIdp;
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  const connects: VigilProcess[] = [];

  before(async () => {
    [idp, stranger, echo] = await Promise.all([startIdp(), startIdp(), echoServer()]);
    hub = await startHubProcess(dir, { extra: { identity: trustIdp(idp) } });
    relay = startRelayProcess(dir, {
      id: "relay-oidc",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-oidc");
  });

  after(async () => {
    await Promise.all(connects.map((c) => c.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await Promise.all([idp?.close(), stranger?.close(), echo?.close()]);
    dir.cleanup();
  });

  async function refusal(token: string): Promise<string> {
    const res = await api(hub.api, "/api/v1/relays", token);
    assert.equal(res.status, 401, `expected 401, got ${res.status}: ${JSON.stringify(res.body)}`);
    const error = res.body.error as { code: string; message: string };
    assert.equal(error.code, "VIGIL_ERR_BAD_TOKEN");
    return error.message;
  }

  async function echoThrough(token: string): Promise<void> {
    const port = await freePort();
    connects.push(await startConnect(hub, token, "echo", port));
    const socket = await dial(port);
    assert.equal((await echoRoundTrip(socket, Buffer.from("hello over oidc"))).toString(), "hello over oidc");
    socket.destroy();
  }

  it("a client-credentials JWT works at the API and through vigil connect, with its groups", async () => {
    const token = await idp.clientCredentials(idp.machine, idp.audience);
    assert.equal((await api(hub.api, "/api/v1/relays", token)).status, 200);
    const me = await api(hub.api, "/api/v1/auth/me", token);
    assert.deepEqual(me.body, {
      subject: "machine",
      groups: ["ci", "deploy"],
      issuer: idp.issuer,
      admin: false,
      expiresAt: me.body.expiresAt,
    });
    await echoThrough(token);
  });

  it("a device-flow token of a person works at the API and through vigil connect", async () => {
    const token = await idp.deviceToken("bob");
    const me = await api(hub.api, "/api/v1/auth/me", token);
    assert.equal(me.status, 200);
    assert.equal(me.body.subject, "bob");
    assert.deepEqual(me.body.groups, ["dev"]);
    assert.equal((await api(hub.api, "/api/v1/relays", token)).status, 200);
    await echoThrough(token);
  });

  it("advertises the issuer humans log in with", async () => {
    const info = await api(hub.api, "/api/v1/info");
    assert.deepEqual(info.body.oidc, [{ issuer: idp.issuer, clientId: idp.deviceClientId }]);
  });

  it("refuses expired, wrong-audience, wrong-issuer, alg none, HS256, forged and unknown-key tokens, each precisely", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: idp.issuer, aud: idp.audience, sub: "machine", groups: ["ci"] };
    const expired = await idp.sign({ ...claims, iat: now - 900, exp: now - 300 });
    assert.equal(await refusal(expired), "token expired");

    const otherAudience = await idp.clientCredentials(idp.machine, "urn:somebody:else");
    assert.match(await refusal(otherAudience), /^token claim "aud" is not valid/);

    const foreign = await stranger.clientCredentials(stranger.machine, stranger.audience);
    assert.equal(await refusal(foreign), `token issuer "${stranger.issuer}" is not trusted`);

    const none = new UnsecuredJWT({ ...claims, exp: now + 300 }).encode();
    assert.equal(await refusal(none), 'token algorithm "none" is not allowed');

    const hs256 = await new SignJWT({ ...claims, exp: now + 300 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("a shared secret anyone could guess"));
    assert.equal(await refusal(hs256), 'token algorithm "HS256" is not allowed');

    // A real token whose claims were edited (made admin): the signature no longer matches.
    const real = await idp.clientCredentials(idp.machine, idp.audience);
    const [h, p, s] = real.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const forged = [
      h,
      Buffer.from(JSON.stringify({ ...payload, groups: ["vigil-admins"] })).toString("base64url"),
      s,
    ].join(".");
    assert.equal(await refusal(forged), "token signature does not verify");

    const { privateKey } = await generateKeyPair("RS256");
    const unknownKey = await new SignJWT({ ...claims, exp: now + 300 })
      .setProtectedHeader({ alg: "RS256", kid: "not-the-idps", typ: "at+jwt" })
      .sign(privateKey);
    assert.match(await refusal(unknownKey), /no signing key of the issuer matches/);

    const idToken = await idp.sign({ ...claims, aud: idp.deviceClientId, exp: now + 300 }, { typ: "JWT" });
    assert.match(await refusal(idToken), /^token claim "aud" is not valid/);
  });

  it("every refusal is one audit line with its reason and front door, and never the token", async () => {
    const token = await idp.clientCredentials(idp.machine, "urn:somebody:else");
    await refusal(token);
    const lines = refusals(hub);
    const mine = lines.find((l) => l.reason.startsWith('token claim "aud"') && l.via === "api");
    assert.ok(mine, `no audit line for the wrong-audience token in:\n${JSON.stringify(lines, null, 1)}`);
    assert.equal(mine.issuer, idp.issuer);
    assert.equal(mine.subject, "machine");
    assert.ok(!hub.proc.stderr.includes(token), "a token reached the log");
    assert.ok(!hub.proc.stderr.includes(token.split(".")[2]!), "a token signature reached the log");
  });

  it("an opaque token is introspected: accepted while active, refused once the IdP revokes it (API and connect)", async () => {
    const token = await idp.clientCredentials(idp.opaque, idp.audience);
    assert.doesNotMatch(token, /\./, "expected an opaque token");
    const me = await api(hub.api, "/api/v1/auth/me", token);
    assert.equal(me.status, 200);
    assert.equal(me.body.subject, "opaque");
    assert.deepEqual(me.body.groups, ["batch"]);

    const port = await freePort();
    const connect = await startConnect(hub, token, "echo", port);
    connects.push(connect);
    await idp.revoke(idp.opaque, token);
    assert.equal(await refusal(token), "token is not active (introspection)");
    // vigil connect already listens; the next session is verified again, at the gRPC front door.
    const socket = await dial(port);
    await new Promise((resolve) => socket.once("close", resolve).once("error", () => {}));
    await connect.waitFor(/session to echo failed: bad_token: token is not active \(introspection\)/);
    assert.ok(refusals(hub).some((l) => l.via === "connect" && l.reason === "token is not active (introspection)"));

    assert.equal(await refusal("definitely-not-a-token"), "token is not active (introspection)");
  });
});
