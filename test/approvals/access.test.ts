import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { testServices } from "../support/env.js";
import { freePort } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { eventually, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
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
    match: { groups: [oncall], connections: [{ name: echo }] }
    access:
      approvers: { groups: [sre-leads], count: 1, timeout: 10m }
      maxDuration: 1h
  - name: brief-window
    match: { groups: [oncall], connections: [{ name: echo-brief }] }
    access:
      approvers: { groups: [sre-leads], count: 1, timeout: 3s }
      maxDuration: 1h
`;

interface Approval {
  id: string;
  effectiveStatus: string;
  decisions: { by: string; verdict: string; reason?: string }[];
}

describe("just-in-time access, approved across two hubs sharing NATS", function () {
  this.timeout(180_000);
  const dir = new Workdir();
  let hubA: HubHandle;
  let hubB: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  let webhook: Server;
  const hooks: { text: string; approval: Approval }[] = [];
  const tokens: Record<string, string> = {};
  const procs: VigilProcess[] = [];

  before(async () => {
    echo = await echoServer();
    webhook = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d));
      req.on("end", () => {
        hooks.push(JSON.parse(body) as { text: string; approval: Approval });
        res.end("ok");
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((r) => webhook.listen(hookPort, "127.0.0.1", r));
    const shared = {
      storage: { nats: { url: testServices().nats.url } },
      identity: { signingKeyFile: dir.file("signing.key") },
    };
    hubA = await startHubProcess(dir, {
      name: "hub-a",
      policy: POLICY,
      extra: { ...shared, approvals: { webhook: { url: `http://127.0.0.1:${hookPort}/hook` } } },
    });
    hubB = await startHubProcess(dir, { name: "hub-b", policy: POLICY, extra: shared });
    relay = startRelayProcess(dir, {
      id: "relay-jit",
      hub: hubA.grpc,
      connections: [
        { name: "echo", type: "tcp", target: echo.address },
        { name: "echo-brief", type: "tcp", target: echo.address },
      ],
    });
    await waitForRelay(hubA, "relay-jit");
    tokens.bob = await createToken(hubA, hubA.adminToken, "bob", ["oncall", "sre-leads"]);
    tokens.carol = await createToken(hubA, hubA.adminToken, "carol", ["sre-leads"]);
    tokens.eve = await createToken(hubA, hubA.adminToken, "eve", ["dev"]);
  });

  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await relay?.stop();
    await Promise.all([hubA?.proc.stop(), hubB?.proc.stop()]);
    await echo?.close();
    webhook?.close();
    dir.cleanup();
  });

  async function cli(hub: HubHandle, who: string, args: string[]) {
    const proc = spawnVigil(`vigil ${args[0]}`, [...args, "--hub", hub.api], { VIGIL_TOKEN: tokens[who]! });
    const { code } = await proc.exited;
    return { code, stdout: proc.stdout, stderr: proc.stderr };
  }

  async function bobConnects(): Promise<boolean> {
    const port = await freePort();
    const proc = await startConnect(hubA, tokens.bob!, "echo", port);
    procs.push(proc);
    const socket = await dial(port);
    try {
      await echoRoundTrip(socket, Buffer.from("x"), 5000);
      socket.destroy();
      return true;
    } catch {
      return false;
    }
  }

  async function requestAccess(duration: string, connection = "echo"): Promise<string> {
    const res = await cli(hubA, "bob", ["access", "request", connection, "--for", duration, "--reason", "incident 42"]);
    assert.equal(res.code, 0, res.stderr);
    const m = /^([0-9a-f-]{36}) {2}pending$/m.exec(res.stdout);
    assert.ok(m, res.stdout);
    return m[1]!;
  }

  it("a request raised on hub A and approved on hub B lets bob in until the grant expires, which ends his session", async () => {
    assert.equal(await bobConnects(), false, "no access before approval");

    // An SSE subscriber on hub B sees the decision as it happens.
    const sse = await fetch(`${hubB.api}/api/v1/approvals/stream`, {
      headers: { authorization: `Bearer ${tokens.carol}` },
    });
    assert.equal(sse.headers.get("content-type"), "text/event-stream");
    const events: string[] = [];
    void (async () => {
      for await (const chunk of sse.body!) events.push(Buffer.from(chunk).toString());
    })().catch(() => {});

    const id = await requestAccess("20s"); // long enough for the steps below on a loaded machine
    await eventually("webhook for the request", () =>
      hooks.find((h) => h.approval.id === id && h.approval.effectiveStatus === "pending"),
    );
    const hook = hooks.find((h) => h.approval.id === id)!;
    assert.match(hook.text, /^bob requests access to \*echo\* for 20s \(oncall-access\)\. Approvers: sre-leads\./);

    const self = await cli(hubB, "bob", ["approvals", "approve", id]);
    assert.equal(self.code, 1);
    assert.match(self.stderr, /you cannot approve or deny your own request/);
    const outsider = await cli(hubB, "eve", ["approvals", "approve", id]);
    assert.match(outsider.stderr, /eve is not in an approver group \(sre-leads\)/);

    const listed = await cli(hubB, "carol", ["approvals", "list"]);
    assert.match(listed.stdout, new RegExp(`${id} {2}pending\\n {2}bob requests access to echo`));
    const approved = await cli(hubB, "carol", ["approvals", "approve", id, "--reason", "on call, incident 42"]);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, new RegExp(`${id} {2}approved`));
    assert.match(approved.stdout, /carol approved \("on call, incident 42"\)/);
    await eventually("SSE event on hub B", () =>
      events.find((e) => e.includes(`"id":"${id}"`) && e.includes('"effectiveStatus":"approved"')),
    );
    await eventually("webhook for the decision", () =>
      hooks.find((h) => h.approval.id === id && h.approval.effectiveStatus === "approved"),
    );

    // Hub A learns of the approval through NATS and lets bob in.
    await eventually("bob connects through hub A", async () => ((await bobConnects()) ? true : undefined), 10_000);
    const port = await freePort();
    const held = await startConnect(hubA, tokens.bob!, "echo", port);
    procs.push(held);
    const session = await dial(port);
    const ended = once(session, "error");
    assert.equal((await echoRoundTrip(session, Buffer.from("inside"))).toString(), "inside");
    const [err] = (await ended) as [NodeJS.ErrnoException];
    assert.equal(err.code, "ECONNRESET", "the relay ends the session when the grant expires");
    await hubA.proc.waitFor(/access grant expired/);
    assert.equal(await bobConnects(), false, "no access after expiry");
  });

  it("a denied request and an expired one both keep bob out", async () => {
    const denied = await requestAccess("1h");
    const res = await cli(hubB, "carol", ["approvals", "deny", denied, "--reason", "not on call"]);
    assert.match(res.stdout, new RegExp(`${denied} {2}denied`));
    const again = await cli(hubA, "carol", ["approvals", "approve", denied]);
    assert.match(again.stderr, /is already denied/);

    const unanswered = await requestAccess("1h", "echo-brief"); // nobody decides within its 3 s
    await eventually("request expired", async () => {
      const { stdout } = await cli(hubB, "carol", ["approvals", "list", "--status", "expired"]);
      return stdout.includes(unanswered) ? true : undefined;
    });
    const late = await cli(hubB, "carol", ["approvals", "approve", unanswered]);
    assert.match(late.stderr, /is already expired/);
    assert.equal(await bobConnects(), false);
  });
});
