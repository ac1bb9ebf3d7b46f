import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { eventually, sleep, Workdir, type VigilProcess } from "../support/vigil.js";
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

const DBA_ONLY = `policies:
  - name: dba-echo
    match:
      groups: [dba]
      connections: [{ name: "ech*", labels: { env: prod } }]
    connect: true
`;

describe("connect grants and policy reload (real hub and relay)", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  let dbaToken: string;
  let devToken: string;
  const procs: VigilProcess[] = [];

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir, { policy: DBA_ONLY });
    relay = startRelayProcess(dir, {
      id: "relay-p",
      hub: hub.grpc,
      connections: [{ name: "echo", type: "tcp", target: echo.address, labels: { env: "prod" } }],
    });
    await waitForRelay(hub, "relay-p");
    dbaToken = await createToken(hub, hub.adminToken, "alice", ["dba"]);
    devToken = await createToken(hub, hub.adminToken, "bob", ["dev"]);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  async function attempt(token: string): Promise<{ ok: boolean; proc: VigilProcess }> {
    const port = await freePort();
    const proc = await startConnect(hub, token, "echo", port);
    procs.push(proc);
    const socket = await dial(port);
    try {
      await echoRoundTrip(socket, Buffer.from("hi"), 5000);
      socket.destroy();
      return { ok: true, proc };
    } catch {
      return { ok: false, proc };
    }
  }

  it("a connect grant limited to group dba lets a dba in and keeps others out, saying why", async () => {
    assert.equal((await attempt(dbaToken)).ok, true);
    const refused = await attempt(devToken);
    assert.equal(refused.ok, false);
    await refused.proc.waitFor(/forbidden: no policy grants bob connect to "echo"/);
  });

  it("editing a policy file changes new sessions within seconds and ends running ones it no longer grants", async () => {
    const port = await freePort();
    const proc = await startConnect(hub, dbaToken, "echo", port);
    procs.push(proc);
    const running = await dial(port);
    assert.equal((await echoRoundTrip(running, Buffer.from("before"))).toString(), "before");
    const ended = once(running, "error");

    writeFileSync(join(hub.policyDir, "test.yaml"), DBA_ONLY.replace("groups: [dba]", "groups: [dev]"));
    await hub.proc.waitFor(/policies reloaded/);
    const [err] = (await ended) as [NodeJS.ErrnoException]; // the relay ended alice's session: her grant is gone
    assert.equal(err.code, "ECONNRESET");
    await relay.waitFor(/policy no longer grants connect; ending session/);
    await eventually("bob allowed now", async () => ((await attempt(devToken)).ok ? true : undefined), 10_000);
    assert.equal((await attempt(dbaToken)).ok, false);
  });

  it("a broken edit keeps the last good policy and logs file:line", async () => {
    writeFileSync(join(hub.policyDir, "test.yaml"), "policies:\n  - name: dba-echo\n    connect: maybe\n");
    await hub.proc.waitFor(/policy reload failed; keeping the last good policies/);
    assert.match(hub.proc.stderr, /test\.yaml:3: policies\[0\]\.connect: expected boolean/);
    await sleep(300);
    assert.equal((await attempt(devToken)).ok, true, "the last good policy (dev allowed) stays in force");
  });
});
