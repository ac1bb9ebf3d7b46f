import assert from "node:assert/strict";
import { testServices } from "../support/env.js";
import { echoServer, type Target } from "../support/targets.js";
import { api, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import { startHubProcess, startRelayProcess, type HubHandle, waitForRelay } from "../support/mesh.js";

describe("two hubs sharing NATS", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  const hubs: HubHandle[] = [];
  const relays: VigilProcess[] = [];
  let echo: Target;

  before(async () => {
    echo = await echoServer();
    // Same signing key on both hubs (a token from one is good at the other); pins live in NATS KV.
    const shared = {
      storage: { nats: { url: testServices().nats.url } },
      identity: { signingKeyFile: dir.file("hub-signing.key") },
    };
    hubs.push(await startHubProcess(dir, { name: "hub-1", extra: shared }));
    hubs.push(await startHubProcess(dir, { name: "hub-2", extra: shared }));
  });

  after(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await Promise.all(hubs.map((h) => h.proc.stop()));
    await echo?.close();
    dir.cleanup();
  });

  it("a relay pinned through one hub is recognised, and its impostor refused, at the other", async () => {
    const [hub1, hub2] = hubs as [HubHandle, HubHandle];
    const id = `relay-${Date.now().toString(36)}`; // NATS outlives this test file: use a fresh id
    const conns = [{ name: "echo", type: "tcp", target: echo.address }];
    relays.push(startRelayProcess(dir, { id, hub: hub1.grpc, connections: conns, keyFile: dir.file("genuine.key") }));
    await waitForRelay(hub1, id);

    const impostor = startRelayProcess(dir, {
      id,
      hub: hub2.grpc,
      connections: conns,
      keyFile: dir.file("impostor.key"),
    });
    relays.push(impostor);
    assert.equal((await impostor.exited).code, 2);
    assert.match(impostor.stderr, /key_mismatch/);

    relays.push(startRelayProcess(dir, { id, hub: hub2.grpc, connections: conns, keyFile: dir.file("genuine.key") }));
    await waitForRelay(hub2, id);
  });

  it("a token signed by one hub is accepted by the other", async () => {
    const [hub1, hub2] = hubs as [HubHandle, HubHandle];
    const res = await api(hub2.api, "/api/v1/relays", hub1.adminToken);
    assert.equal(res.status, 200);
  });
});

describe("advertised gRPC address", function () {
  this.timeout(60_000);
  const dir = new Workdir();
  let hub: HubHandle | undefined;
  after(async () => {
    await hub?.proc.stop();
    dir.cleanup();
  });

  it("tells clients hub.advertiseGrpc instead of the bound address (load balancer, port mapping)", async () => {
    hub = await startHubProcess(dir, { env: { VIGIL_HUB_ADVERTISE_GRPC: "vigil.example.com:443" } });
    const info = await api(hub.api, "/api/v1/info");
    assert.deepEqual(info.body.grpc, { address: "vigil.example.com:443", tls: false });
  });
});

describe("configuration errors at the command line", function () {
  this.timeout(30_000);
  const dir = new Workdir();
  after(() => dir.cleanup());

  it("a bad config stops the process with one error naming the key", async () => {
    const file = dir.writeConfig("bad.yaml", {
      listen: { api: "127.0.0.1:8080" },
      relay: { connections: [{ name: "db", type: "mysql", target: "127.0.0.1:3306" }] },
    });
    const proc = spawnVigil("bad config", ["relay", "--config", file]);
    assert.equal((await proc.exited).code, 1);
    assert.equal(
      proc.stderr.trim(),
      'vigil: config: relay.connections[0].type: expected one of postgres, ssh, http, kubernetes, tcp (got "mysql")',
    );
  });

  it("a bad env value names the variable", async () => {
    const proc = spawnVigil("bad env", ["hub"], { VIGIL_HUB_HEARTBEAT_MS: "fast" });
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr, /VIGIL_HUB_HEARTBEAT_MS: expected integer \(got "fast"\)/);
  });

  it("a connection type without an engine yet is refused at relay start, not forwarded raw", async () => {
    const file = dir.writeConfig("http.yaml", {
      relay: { token: "t", connections: [{ name: "box", type: "http", target: "127.0.0.1:80" }] },
      storage: { embedded: { path: dir.file("d") } },
    });
    const proc = spawnVigil("no engine", ["relay", "--config", file]);
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr, /relay connection "box": type http has no engine in this relay yet/);
  });

  it("a postgres connection without usable credentials is refused at relay start, naming the key", async () => {
    const file = dir.writeConfig("pg.yaml", {
      relay: { token: "t", connections: [{ name: "db", type: "postgres", target: "127.0.0.1:5432" }] },
      storage: { embedded: { path: dir.file("d") } },
    });
    const proc = spawnVigil("no credentials", ["relay", "--config", file]);
    assert.equal((await proc.exited).code, 1);
    assert.match(proc.stderr, /config: relay connection "db": credentials/);
  });
});
