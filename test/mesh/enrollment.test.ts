import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
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

const exec = promisify(execFile);

describe("relay enrollment", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let echo: Target;
  let relay: VigilProcess;
  const others: VigilProcess[] = [];

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir);
    relay = startRelayProcess(dir, {
      id: "relay-a",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-a");
  });

  after(async () => {
    await Promise.all([...others, relay].map((p) => p?.stop()));
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("refuses a relay with a wrong enrollment token, with the reason", async () => {
    const bad = startRelayProcess(dir, { id: "relay-x", hub: hub.grpc, token: "wrong-token", connections: [] });
    others.push(bad);
    assert.equal((await bad.exited).code, 2);
    assert.match(
      bad.stderr,
      /hub rejected the relay \(bad_enrollment_token\): enrollment token is not valid for this hub/,
    );
    await hub.proc.waitFor(/"code":"bad_enrollment_token"/);
  });

  it("refuses an impostor presenting another key for a known relay_id, and keeps serving the real one", async () => {
    const impostor = startRelayProcess(dir, {
      id: "relay-a",
      hub: hub.grpc,
      keyFile: dir.file("impostor.key"),
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    others.push(impostor);
    assert.equal((await impostor.exited).code, 2);
    assert.match(impostor.stderr, /\(key_mismatch\): relay_id "relay-a" is enrolled with a different key/);
    assert.equal(await relayStatus(hub, hub.adminToken, "relay-a"), "online");
    const port = await freePort();
    const token = await createToken(hub, hub.adminToken, "agent");
    others.push(await startConnect(hub, token, "echo", port));
    const socket = await dial(port);
    assert.equal((await echoRoundTrip(socket, Buffer.from("ping"))).toString(), "ping");
    socket.destroy();
  });

  it("the pin survives a relay restart: the same key enrolls again", async () => {
    await relay.stop();
    await waitForRelay(hub, "relay-a", "offline");
    relay = startRelayProcess(dir, {
      id: "relay-a",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
    });
    await waitForRelay(hub, "relay-a");
  });
});

describe("gRPC over TLS with a throwaway CA", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle | undefined;
  let echo: Target;
  const procs: VigilProcess[] = [];

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("relay and vigil connect reach a TLS hub, trusting only the test CA", async () => {
    const ca = dir.file("ca");
    const ssl = (args: string[]) => exec("openssl", args, { cwd: dir.path });
    await ssl([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=vigil test CA",
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
    ]);
    await ssl([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-keyout",
      "hub.key",
      "-out",
      "hub.csr",
    ]);
    await exec(
      "sh",
      [
        "-c",
        `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out hub.pem`,
      ],
      { cwd: dir.path },
    );
    echo = await echoServer();
    hub = await startHubProcess(dir, { extra: { tls: { cert: dir.file("hub.pem"), key: dir.file("hub.key") } } });
    const relay = startRelayProcess(dir, {
      id: "relay-tls",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
      extra: { tls: { ca: `${ca}.pem` } },
    });
    procs.push(relay);
    await relay.waitFor(/enrolled with hub/);
    const token = await createToken(hub, hub.adminToken, "agent", [], { VIGIL_CA: `${ca}.pem` });
    const port = await freePort();
    procs.push(await startConnect(hub, token, "echo", port, { VIGIL_CA: `${ca}.pem` }));
    const socket = await dial(port);
    assert.equal((await echoRoundTrip(socket, Buffer.from("over tls"))).toString(), "over tls");
    socket.destroy();

    // A relay that does not trust the hub's CA never enrolls.
    const untrusting = startRelayProcess(dir, {
      id: "relay-plain",
      hub: hub.grpc,
      connections: [],
      extra: { tls: {} },
    });
    procs.push(untrusting);
    await untrusting.waitFor(/control stream failed/);
    assert.doesNotMatch(untrusting.stderr, /enrolled with hub/);
  });
});
