import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { freePort } from "../support/services.js";
import { api, spawnVigil, Workdir } from "../support/vigil.js";
import { startHubProcess, type HubHandle } from "../support/mesh.js";
import { Browser } from "./browser.js";
import { startIdp, trustIdp, type TestIdp } from "./idp.js";

describe("human logins", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let idp: TestIdp;
  let hub: HubHandle;

  before(async () => {
    const apiPort = await freePort();
    idp = await startIdp({ redirectUris: [`http://127.0.0.1:${apiPort}/api/v1/auth/callback`] });
    hub = await startHubProcess(dir, { apiPort, extra: { identity: trustIdp(idp) } });
  });

  after(async () => {
    await hub?.proc.stop();
    await idp?.close();
    dir.cleanup();
  });

  it("vigil login (device flow) keeps the token, and later commands use it without --token", async () => {
    const env = { XDG_CONFIG_HOME: dir.file("xdg") };
    const login = spawnVigil("login", ["login", "--hub", hub.api], env);
    const [, page] = await login.waitFor(/open this page in a browser: (\S+)/);
    await login.waitFor(/code: [A-Z]{4}-[A-Z]{4}/);
    await idp.approveDevice(page!, "alice");
    const { code } = await login.exited;
    assert.equal(code, 0, login.stderr);
    assert.match(login.stderr, /Logged in to http:\/\/127\.0\.0\.1:\d+ as alice \(groups: vigil-admins, dev\)/);

    const file = dir.file("xdg/vigil/credentials.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const stored = JSON.parse(readFileSync(file, "utf8")) as {
      hubs: Record<string, { token: string; issuer: string }>;
    };
    assert.equal(stored.hubs[hub.api]?.issuer, idp.issuer);

    // alice is in vigil-admins at the IdP, so her login may mint tokens: no --token, no VIGIL_TOKEN.
    const create = spawnVigil("token create", ["token", "create", "--name", "from-login", "--hub", hub.api], env);
    assert.equal((await create.exited).code, 0, create.stderr);
    const minted = create.stdout.trim();
    assert.equal((await api(hub.api, "/api/v1/auth/me", minted)).body.subject, "from-login");

    // Without the stored login the same command has no identity.
    const anonymous = spawnVigil("token create", ["token", "create", "--name", "x", "--hub", hub.api], {
      XDG_CONFIG_HOME: dir.file("nobody"),
    });
    assert.equal((await anonymous.exited).code, 1);
    assert.match(anonymous.stderr, /missing Authorization: Bearer token/);
  });

  it("web login: code flow with PKCE sets an httpOnly session cookie the API accepts, until logout", async () => {
    const browser = new Browser();
    let page = await browser.get(`${hub.api}/api/v1/auth/login?returnTo=/api/v1/auth/me`);
    page = await browser.submitForm(page, { login: "bob", password: "any" }); // IdP login prompt
    page = await browser.submitForm(page, {}); // IdP consent prompt → hub callback → returnTo
    assert.equal(page.status, 200, page.body);
    assert.equal(new URL(page.url).pathname, "/api/v1/auth/me");
    const me = JSON.parse(page.body) as { subject: string; groups: string[]; issuer: string; admin: boolean };
    assert.deepEqual(me, { ...me, subject: "bob", groups: ["dev"], issuer: idp.issuer, admin: false });

    const session = browser.cookies.get("vigil_session");
    assert.ok(session, "no session cookie");
    const relays = await fetch(`${hub.api}/api/v1/relays`, { headers: { cookie: `vigil_session=${session}` } });
    assert.equal(relays.status, 200);
    // A Bearer token, when present, wins over the cookie.
    const bearer = await fetch(`${hub.api}/api/v1/relays`, {
      headers: { cookie: `vigil_session=${session}`, authorization: "Bearer not-a-token" },
    });
    assert.equal(bearer.status, 401);
    // The session cookie is not a Bearer token.
    const asBearer = await api(hub.api, "/api/v1/relays", session);
    assert.equal(asBearer.status, 401);

    const logout = await browser.request(`${hub.api}/api/v1/auth/logout`, { method: "POST" });
    assert.equal(logout.status, 204);
    assert.equal(browser.cookies.get("vigil_session"), undefined, "logout did not clear the cookie");
    const after = await fetch(`${hub.api}/api/v1/relays`, { headers: { cookie: `vigil_session=${session}` } });
    assert.equal(after.status, 401);
    const body = (await after.json()) as { error: { message: string } };
    assert.equal(body.error.message, "session has ended (logged out)");
  });

  it("the login callback refuses a forged state", async () => {
    const browser = new Browser();
    const start = await browser.get(`${hub.api}/api/v1/auth/login`, (url) => url.port !== String(hub.apiPort));
    const authorize = new URL(start.url);
    assert.equal(authorize.origin, idp.issuer);
    assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
    const query = new URLSearchParams({ code: "abc", state: "forged", iss: idp.issuer });
    const res = await browser.get(`${hub.api}/api/v1/auth/callback?${query}`);
    assert.equal(res.status, 401, res.body);
    assert.match(res.body, /state/);
  });
});
