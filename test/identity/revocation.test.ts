import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { testServices } from "../support/env.js";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { api, eventually, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  createToken,
  dial,
  startConnect,
  startHubProcess,
  startRelayProcess,
  type HubHandle,
  waitForRelay,
} from "../support/mesh.js";

async function vigil(args: string[], token: string): Promise<VigilProcess> {
  const proc = spawnVigil(args.slice(0, 2).join(" "), args, { VIGIL_TOKEN: token });
  await proc.exited;
  return proc;
}

const revoke = (hub: HubHandle, token: string, id: string) => vigil(["token", "revoke", id, "--hub", hub.api], token);

describe("revoking local tokens (embedded storage)", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  const connects: VigilProcess[] = [];

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir);
    relay = startRelayProcess(dir, {
      id: "relay-rev",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-rev");
  });

  after(async () => {
    await Promise.all(connects.map((c) => c.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("vigil token revoke refuses the token at the API and at vigil connect, and the list shows it", async () => {
    const token = await createToken(hub, hub.adminToken, "agent-7", ["dev"]);
    const id = decodeJwt(token).jti!;
    assert.equal((await api(hub.api, "/api/v1/relays", token)).status, 200);
    const port = await freePort();
    const connect = await startConnect(hub, token, "echo", port);
    connects.push(connect);

    const listed = await api(hub.api, "/api/v1/tokens", hub.adminToken);
    const entry = (listed.body.tokens as { id: string; subject: string; groups: string[]; revoked: boolean }[]).find(
      (t) => t.id === id,
    );
    assert.deepEqual(entry && { subject: entry.subject, groups: entry.groups, revoked: entry.revoked }, {
      subject: "agent-7",
      groups: ["dev"],
      revoked: false,
    });
    assert.ok(!JSON.stringify(listed.body).includes(token.split(".")[2]!), "the list must not carry tokens");

    const denied = await revoke(hub, token, id);
    assert.equal((await denied.exited).code, 1);
    assert.match(denied.stderr, /agent-7 is not in an admin group/);

    const done = await revoke(hub, hub.adminToken, id);
    assert.equal((await done.exited).code, 0, done.stderr);
    const res = await api(hub.api, "/api/v1/relays", token);
    assert.equal(res.status, 401);
    assert.deepEqual(res.body.error, { code: "VIGIL_ERR_BAD_TOKEN", message: `token ${id} has been revoked` });

    const socket = await dial(port);
    await new Promise((resolve) => socket.once("close", resolve).once("error", () => {}));
    await connect.waitFor(new RegExp(`session to echo failed: bad_token: token ${id} has been revoked`));

    const list = await vigil(["token", "list", "--hub", hub.api], hub.adminToken);
    assert.match(list.stdout, new RegExp(`${id}\\s+agent-7\\s+dev\\s+\\S+\\s+revoked`));
  });

  it("revocations survive a hub restart", async () => {
    const token = await createToken(hub, hub.adminToken, "agent-8");
    const id = decodeJwt(token).jti!;
    assert.equal((await (await revoke(hub, hub.adminToken, id)).exited).code, 0);
    await hub.proc.stop();
    hub = await startHubProcess(dir, { apiPort: hub.apiPort, grpcPort: hub.grpcPort });
    const res = await api(hub.api, "/api/v1/relays", token);
    assert.equal(res.status, 401);
    assert.equal((res.body.error as { message: string }).message, `token ${id} has been revoked`);
  });
});

describe("revoking local tokens across hubs sharing NATS", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  const hubs: HubHandle[] = [];

  let shared: object;

  before(async () => {
    shared = {
      storage: { nats: { url: testServices().nats.url } },
      identity: { signingKeyFile: dir.file("hub-signing.key") },
    };
    hubs.push(await startHubProcess(dir, { name: "hub-a", extra: shared }));
    hubs.push(await startHubProcess(dir, { name: "hub-b", extra: shared }));
  });

  after(async () => {
    await Promise.all(hubs.map((h) => h.proc.stop()));
    dir.cleanup();
  });

  it("a token revoked through hub A is refused at hub B within two seconds", async () => {
    const [a, b] = hubs as [HubHandle, HubHandle];
    const token = await createToken(a, a.adminToken, "roaming-agent", ["dev"]);
    const id = decodeJwt(token).jti!;
    assert.equal((await api(b.api, "/api/v1/relays", token)).status, 200);
    // Hub B lists what hub A issued: the records live in NATS.
    await eventually("hub B lists the token", async () => {
      const res = await api(b.api, "/api/v1/tokens", b.adminToken);
      return (res.body.tokens as { id: string }[]).some((t) => t.id === id) ? true : undefined;
    });

    const done = await revoke(a, a.adminToken, id);
    assert.equal((await done.exited).code, 0, done.stderr);
    await eventually(
      "hub B refuses the revoked token",
      async () => ((await api(b.api, "/api/v1/relays", token)).status === 401 ? true : undefined),
      2_000,
    );
    const res = await api(b.api, "/api/v1/relays", token);
    assert.equal((res.body.error as { message: string }).message, `token ${id} has been revoked`);

    // A hub started after the revocation has read every record from NATS before it serves anything.
    const c = await startHubProcess(dir, { name: "hub-c", extra: shared });
    hubs.push(c);
    const first = await api(c.api, "/api/v1/relays", token);
    assert.equal(first.status, 401);
    assert.equal((first.body.error as { message: string }).message, `token ${id} has been revoked`);
  });
});
