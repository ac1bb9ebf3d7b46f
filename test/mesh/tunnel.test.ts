import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { testServices } from "../support/env.js";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { api, Workdir, type VigilProcess } from "../support/vigil.js";
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

const exec = promisify(execFile);

describe("tunnels through a real hub and relay", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  let agentToken: string;
  const connects: VigilProcess[] = [];

  before(async () => {
    const pg = testServices().pg;
    echo = await echoServer();
    hub = await startHubProcess(dir);
    relay = startRelayProcess(dir, {
      id: "relay-a",
      hub: hub.grpc,
      connections: [
        { name: "pg", type: "tcp", target: `127.0.0.1:${pg.port}` },
        { name: "echo", type: "tcp", target: echo.address },
        { name: "nowhere", type: "tcp", target: `127.0.0.1:${await freePort()}` },
      ],
    });
    await waitForRelay(hub, "relay-a");
    agentToken = await createToken(hub, hub.adminToken, "agent-1", ["dev"]);
  });

  after(async () => {
    await Promise.all(connects.map((c) => c.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("psql through vigil connect (tcp) runs queries against a real PostgreSQL", async () => {
    const pg = testServices().pg;
    const port = await freePort();
    connects.push(await startConnect(hub, agentToken, "pg", port));
    const sql = "create temp table t(x int); insert into t select generate_series(1,1000); select sum(x) from t;";
    const { stdout } = await exec(
      "psql",
      ["-X", "-At", "-v", "ON_ERROR_STOP=1", `host=127.0.0.1 port=${port} user=${pg.user} dbname=postgres`, "-c", sql],
      {
        env: { ...process.env, PGPASSWORD: pg.password },
      },
    );
    assert.equal(stdout.trim().split("\n").pop(), "500500");
  });

  it("carries bytes intact in order, and a half-close reaches the target and comes back", async () => {
    const port = await freePort();
    connects.push(await startConnect(hub, agentToken, "echo", port));
    const socket = await dial(port);
    const payload = randomBytes(8 * 1024 * 1024);
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.end(payload);
    await once(socket, "end"); // the echo target ends only after it saw our end
    assert.ok(Buffer.concat(chunks).equals(payload), "echoed bytes differ");
  });

  it("lists the relay online with its connections, and refuses the API without a valid token", async () => {
    const res = await api(hub.api, "/api/v1/relays", agentToken);
    assert.equal(res.status, 200);
    const relays = res.body.relays as {
      id: string;
      status: string;
      segment: string;
      connections: { name: string }[];
    }[];
    const mine = relays.find((r) => r.id === "relay-a");
    assert.equal(mine?.status, "online");
    assert.equal(mine?.segment, "local");
    assert.deepEqual(mine?.connections.map((c) => c.name).sort(), ["echo", "nowhere", "pg"]);
    const anonymous = await api(hub.api, "/api/v1/relays");
    assert.equal(anonymous.status, 401);
    assert.deepEqual(anonymous.body, {
      error: { code: "VIGIL_ERR_BAD_TOKEN", message: "missing Authorization: Bearer token" },
    });
    const forged = agentToken.slice(0, -4) + (agentToken.endsWith("AAAA") ? "BBBB" : "AAAA");
    const bad = await api(hub.api, "/api/v1/relays", forged);
    assert.equal(bad.status, 401);
    assert.match((bad.body.error as { message: string }).message, /signature does not verify/);
  });

  it("only an admin may create tokens, and the token printed is the only output", async () => {
    const denied = await api(hub.api, "/api/v1/tokens", agentToken, {
      method: "POST",
      body: { name: "x", groups: [], ttl: "1h" },
    });
    assert.equal(denied.status, 403);
    assert.equal((denied.body.error as { code: string }).code, "VIGIL_ERR_FORBIDDEN");
    const token = await createToken(hub, hub.adminToken, "ci-bot", ["ci", "deploy"]);
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as {
      sub: string;
      groups: string[];
    };
    assert.equal(claims.sub, "ci-bot");
    assert.deepEqual(claims.groups, ["ci", "deploy"]);
    const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as { alg: string };
    assert.equal(header.alg, "EdDSA");
  });

  it("vigil connect refuses a bad token and an unknown connection before listening", async () => {
    const { spawnVigil } = await import("../support/vigil.js");
    const bad = spawnVigil(
      "connect bad token",
      ["connect", "echo", "--port", String(await freePort()), "--hub", hub.api],
      { VIGIL_TOKEN: "not-a-jwt" },
    );
    assert.equal((await bad.exited).code, 1);
    assert.match(bad.stderr, /token is malformed/);
    const unknown = spawnVigil(
      "connect unknown",
      ["connect", "no-such-db", "--port", String(await freePort()), "--hub", hub.api],
      { VIGIL_TOKEN: agentToken },
    );
    assert.equal((await unknown.exited).code, 1);
    assert.match(unknown.stderr, /unknown connection "no-such-db"/);
  });

  it("a target that refuses connections resets the client's socket and says why", async () => {
    const port = await freePort();
    const proc = await startConnect(hub, agentToken, "nowhere", port);
    connects.push(proc);
    const socket = await dial(port);
    const [err] = (await once(socket, "error")) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNRESET");
    await proc.waitFor(/target_unreachable: cannot reach 127\.0\.0\.1:\d+/);
    // The relay and the hub are unaffected: the next session to a live target works.
    const echoPort = await freePort();
    connects.push(await startConnect(hub, agentToken, "echo", echoPort));
    const s2 = await dial(echoPort);
    assert.equal((await echoRoundTrip(s2, Buffer.from("still here"))).toString(), "still here");
    s2.destroy();
  });
});
