import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { freePort } from "../support/services.js";
import { sourceServer, type Target } from "../support/targets.js";
import { sleep, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  createToken,
  dial,
  startConnect,
  startHubProcess,
  startRelayProcess,
  type HubHandle,
  waitForRelay,
} from "../support/mesh.js";

const GIB = 1024 ** 3;
// Unbounded buffering anywhere on the path would hold a large part of the 1 GiB; a bounded path
// stays near a Node process's baseline.
const RSS_LIMIT_MIB = 400;

describe("bulk transfer to a slow reader", function () {
  this.timeout(300_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let connect: VigilProcess;
  let source: Target & { sha256: string };

  before(async () => {
    source = await sourceServer(GIB);
    hub = await startHubProcess(dir);
    relay = startRelayProcess(dir, {
      id: "relay-bulk",
      hub: hub.grpc,
      connections: [{ name: "source", type: "tcp", target: source.address }],
    });
    await waitForRelay(hub, "relay-bulk");
  });

  after(async () => {
    await connect?.stop();
    await relay?.stop();
    await hub?.proc.stop();
    await source?.close();
    dir.cleanup();
  });

  it("1 GiB arrives intact while hub, relay and vigil connect memory stay bounded", async () => {
    const port = await freePort();
    connect = await startConnect(hub, await createToken(hub, hub.adminToken, "bulk"), "source", port);
    const socket = await dial(port);
    const hash = createHash("sha256");
    let received = 0;
    let nextPause = 32 * 1024 * 1024;
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      socket.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        // The slow reader: stop reading for 150 ms after every 32 MiB, so every buffer upstream fills.
        if (received >= nextPause) {
          nextPause += 32 * 1024 * 1024;
          socket.pause();
          void sleep(150).then(() => socket.resume());
        }
      });
      socket.once("end", resolve);
      socket.once("error", reject);
    });
    const seconds = (Date.now() - started) / 1000;
    const peaks = { hub: hub.proc.peakRssMiB(), relay: relay.peakRssMiB(), connect: connect.peakRssMiB() };
    console.log(
      `      1 GiB in ${seconds.toFixed(1)} s; peak RSS MiB: hub ${peaks.hub.toFixed(0)}, relay ${peaks.relay.toFixed(0)}, vigil connect ${peaks.connect.toFixed(0)}`,
    );
    assert.equal(received, GIB);
    assert.equal(hash.digest("hex"), source.sha256);
    for (const [name, mib] of Object.entries(peaks))
      assert.ok(mib < RSS_LIMIT_MIB, `${name} peak RSS ${mib.toFixed(0)} MiB`);
  });
});
