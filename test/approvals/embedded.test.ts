import assert from "node:assert/strict";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  createToken,
  dial,
  echoRoundTrip,
  startConnect,
  startHubProcess,
  startRelayProcess,
  type HubHandle,
  waitForRelay,
} from "../support/mesh.js";

const POLICY = `policies:
  - name: oncall-access
    match: { groups: [oncall] }
    access:
      approvers: { groups: [sre-leads], count: 1, timeout: 10m }
`;

describe("approvals with embedded storage", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  const procs: VigilProcess[] = [];

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir, { policy: POLICY });
    relay = startRelayProcess(dir, {
      id: "relay-emb",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-emb");
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("keeps an approved grant across a hub restart", async () => {
    const bob = await createToken(hub, hub.adminToken, "bob", ["oncall"]);
    const carol = await createToken(hub, hub.adminToken, "carol", ["sre-leads"]);
    const request = spawnVigil(
      "access",
      ["access", "request", "echo", "--for", "1h", "--reason", "deploy", "--hub", hub.api],
      { VIGIL_TOKEN: bob },
    );
    await request.exited;
    const id = /^([0-9a-f-]{36}) {2}pending$/m.exec(request.stdout)?.[1];
    assert.ok(id, request.stdout + request.stderr);
    const approve = spawnVigil("approve", ["approvals", "approve", id, "--hub", hub.api], { VIGIL_TOKEN: carol });
    assert.equal((await approve.exited).code, 0, approve.stderr);

    await hub.proc.stop();
    hub = await startHubProcess(dir, { apiPort: hub.apiPort, grpcPort: hub.grpcPort });
    await waitForRelay(hub, "relay-emb");

    const port = await freePort();
    procs.push(await startConnect(hub, bob, "echo", port));
    const socket = await dial(port);
    assert.equal((await echoRoundTrip(socket, Buffer.from("still granted"))).toString(), "still granted");
    socket.destroy();
  });
});
