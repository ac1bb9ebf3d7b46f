import assert from "node:assert/strict";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { Workdir, type VigilProcess } from "../support/vigil.js";
import {
  createToken,
  dial,
  echoRoundTrip,
  relayStatus,
  startConnect,
  startHubProcess,
  startRelayProcess,
  type HubHandle,
  waitForRelay,
} from "../support/mesh.js";

describe("one relay linked to every hub replica", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  const hubs: HubHandle[] = [];
  const procs: VigilProcess[] = [];
  let relay: VigilProcess;
  let echo: Target;

  before(async () => {
    echo = await echoServer();
    const shared = { identity: { signingKeyFile: dir.file("signing.key") } };
    hubs.push(
      await startHubProcess(dir, { name: "hub-a", extra: shared }),
      await startHubProcess(dir, { name: "hub-b", extra: shared }),
    );
    relay = startRelayProcess(dir, {
      id: "relay-multi",
      hub: hubs[0]!.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
      extra: { hubs: hubs.map((h) => h.grpc) },
    });
    for (const hub of hubs) await waitForRelay(hub, "relay-multi");
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await relay?.stop();
    await Promise.all(hubs.map((h) => h.proc.stop()));
    await echo?.close();
    dir.cleanup();
  });

  async function sessionThrough(hub: HubHandle): Promise<string> {
    const port = await freePort();
    const connect = await startConnect(hub, await createToken(hub, hub.adminToken, "agent"), "echo", port);
    procs.push(connect);
    const socket = await dial(port);
    const echoed = (await echoRoundTrip(socket, Buffer.from("via"))).toString();
    socket.destroy();
    return echoed;
  }

  it("serves sessions that start at either hub", async () => {
    assert.equal(await sessionThrough(hubs[0]!), "via");
    assert.equal(await sessionThrough(hubs[1]!), "via");
  });

  it("keeps serving through hub B when hub A dies", async () => {
    const [a, b] = hubs as [HubHandle, HubHandle];
    await a.proc.stop("SIGKILL");
    await relay.waitFor(/control stream failed|hub unreachable; reconnecting/);
    assert.equal(await relayStatus(b, b.adminToken, "relay-multi"), "online");
    assert.equal(await sessionThrough(b), "via");
  });
});
