import assert from "node:assert/strict";
import { once } from "node:events";
import type { Socket } from "node:net";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { sleep, Workdir, type VigilProcess } from "../support/vigil.js";
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

/** Open one session through `connect` and return the relay the hub routed it to. */
async function sessionVia(connect: VigilProcess, port: number): Promise<{ socket: Socket; relay: string }> {
  const before = connect.stderr.length;
  const socket = await dial(port);
  assert.equal((await echoRoundTrip(socket, Buffer.from("hi"))).toString(), "hi");
  const m = /session \S+ via relay (\S+)/.exec(connect.stderr.slice(before));
  assert.ok(m, `no session line in: ${connect.stderr.slice(before)}`);
  return { socket, relay: m[1]! };
}

describe("relay lifecycle: two relays, drain, failure and hub restart", function () {
  this.timeout(180_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let echo: Target;
  let relays: Record<string, VigilProcess>;
  let connect: VigilProcess;
  let port: number;

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir);
    const conns = [{ name: "echo", type: "tcp", target: echo.address }];
    relays = {
      a: startRelayProcess(dir, { id: "relay-a", hub: hub.grpc, connections: conns }),
      b: startRelayProcess(dir, { id: "relay-b", hub: hub.grpc, connections: conns }),
    };
    await waitForRelay(hub, "relay-a", "online");
    await waitForRelay(hub, "relay-b", "online");
    port = await freePort();
    connect = await startConnect(hub, await createToken(hub, hub.adminToken, "agent"), "echo", port);
  });

  after(async () => {
    await connect?.stop();
    await Promise.all(Object.values(relays ?? {}).map((r) => r.stop()));
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("spreads sessions over both relays serving a connection", async () => {
    const seen = new Set<string>();
    const sockets: Socket[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await sessionVia(connect, port);
      seen.add(s.relay);
      sockets.push(s.socket); // kept open so that least-loaded routing alternates
    }
    sockets.forEach((s) => s.destroy());
    assert.deepEqual([...seen].sort(), ["relay-a", "relay-b"]);
  });

  it("SIGTERM drains a relay: its running session finishes, new sessions go to the other", async () => {
    // Find a session that landed on relay-a and keep it open across the drain.
    let held: { socket: Socket; relay: string } | undefined;
    const spare: Socket[] = [];
    while (!held) {
      const s = await sessionVia(connect, port);
      if (s.relay === "relay-a") held = s;
      else spare.push(s.socket);
    }
    spare.forEach((s) => s.destroy());
    relays.a!.child.kill("SIGTERM");
    await waitForRelay(hub, "relay-a", "draining");
    for (let i = 0; i < 4; i++) {
      const s = await sessionVia(connect, port);
      assert.equal(s.relay, "relay-b");
      s.socket.destroy();
    }
    // The session on the draining relay still works, and the relay exits once it ends.
    assert.equal((await echoRoundTrip(held.socket, Buffer.from("still running"))).toString(), "still running");
    assert.equal(relays.a!.child.exitCode, null, "relay-a must wait for its session");
    held.socket.end();
    const { code } = await relays.a!.exited;
    assert.equal(code, 0);
    await waitForRelay(hub, "relay-a", "offline");
  });

  it("a relay killed outright fails its sessions with an error, and new sessions go to the survivor", async () => {
    relays.a = startRelayProcess(dir, {
      id: "relay-a",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-a", "online");
    let victim: { socket: Socket; relay: string } | undefined;
    while (!victim) {
      const s = await sessionVia(connect, port);
      if (s.relay === "relay-a") victim = s;
      else s.socket.destroy();
    }
    relays.a.child.kill("SIGKILL");
    const [err] = (await once(victim.socket, "error")) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNRESET");
    await connect.waitFor(
      /session to echo failed: relay_lost: relay relay-a (connection lost|closed the tunnel unexpectedly)/,
    );
    await waitForRelay(hub, "relay-a", "offline");
    for (let i = 0; i < 4; i++) {
      const s = await sessionVia(connect, port);
      assert.equal(s.relay, "relay-b");
      s.socket.destroy();
    }
  });

  it("when the hub restarts, in-flight sessions end with an error and relays reconnect within seconds", async () => {
    const inflight = await sessionVia(connect, port);
    const closed = once(inflight.socket, "error");
    await hub.proc.stop("SIGKILL");
    const [err] = (await closed) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNRESET");

    const restarted = await startHubProcess(dir, { apiPort: hub.apiPort, grpcPort: hub.grpcPort });
    hub = { ...restarted };
    const t0 = Date.now();
    await waitForRelay(hub, "relay-b", "online");
    const reconnectMs = Date.now() - t0;
    assert.ok(reconnectMs < 5000, `relay-b took ${reconnectMs} ms to reconnect`);
    // The same vigil connect process keeps working once the hub is back.
    const s = await sessionVia(connect, port);
    assert.equal(s.relay, "relay-b");
    s.socket.destroy();
    await sleep(10);
  });
});
