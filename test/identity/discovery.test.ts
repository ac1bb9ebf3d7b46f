import assert from "node:assert/strict";
import { freePort } from "../support/services.js";
import { api, eventually, Workdir } from "../support/vigil.js";
import { startHubProcess, type HubHandle } from "../support/mesh.js";
import { startIdp, trustIdp, type TestIdp } from "./idp.js";

describe("an OIDC issuer that is down when the hub starts", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let idp: TestIdp | undefined;

  after(async () => {
    await hub?.proc.stop();
    await idp?.close();
    dir.cleanup();
  });

  it("does not stop the hub; its tokens are refused with the reason until discovery succeeds", async () => {
    const port = await freePort();
    // A token from an IdP on that port, made before the IdP goes away: the hub will see it while the IdP is down.
    const early = await startIdp({ port });
    const issuer = early.issuer;
    const stale = await early.clientCredentials(early.machine, early.audience);
    const identity = trustIdp(early);
    await early.close();

    hub = await startHubProcess(dir, { extra: { identity } });
    assert.equal((await api(hub.api, "/api/v1/relays", hub.adminToken)).status, 200, "local tokens still work");
    const res = await api(hub.api, "/api/v1/relays", stale);
    assert.equal(res.status, 401);
    assert.match(
      (res.body.error as { message: string }).message,
      new RegExp(`^cannot verify tokens of issuer "${issuer}" yet: OIDC discovery failed`),
    );

    idp = await startIdp({ port });
    const fresh = await idp.clientCredentials(idp.machine, idp.audience);
    await eventually(
      "the hub discovers the issuer",
      async () => ((await api(hub.api, "/api/v1/relays", fresh)).status === 200 ? true : undefined),
      40_000,
    );
    // The restarted IdP signs with a new key under the same kid: the old token no longer verifies.
    const old = await api(hub.api, "/api/v1/relays", stale);
    assert.equal((old.body.error as { message: string }).message, "token signature does not verify");
  });
});
