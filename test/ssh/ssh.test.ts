import assert from "node:assert/strict";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { eventually, Workdir, type VigilProcess } from "../support/vigil.js";
import { sessionWithCommand, sshConfig, sshConnection, sshVia, type SshVia } from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-recursive-delete-of-root
        effect: deny
        shell: { commands: [rm], flags: [r, R, recursive], args: ["/"] }
  - name: nobody-reaches-secret
    match: { groups: [agents], connections: [{ name: web-secret }] }
    connect: false
`;

describe("ssh -J through the hub's jump host and a relay's ssh engine", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let token: string;
  let via: SshVia;
  const relayData = () => dir.file("relay-ssh-relay-data");

  before(async () => {
    hub = await startHubProcess(dir, { policy: POLICY });
    relay = startRelayProcess(dir, { id: "ssh-relay", hub: hub.grpc, connections: [sshConnection("web-1")] });
    await waitForRelay(hub, "ssh-relay");
    token = await createToken(hub, hub.adminToken, "agent-1", ["agents"]);
    via = { hub, token, config: sshConfig(dir, "token") };
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  it("runs echo hello on the target", async () => {
    const r = await sshVia(via, "web-1", "echo", "hello");
    assert.equal(r.stderr, "");
    assert.equal(r.stdout, "hello\n");
    assert.equal(r.code, 0);
  });

  it("passes exit codes and stderr through", async () => {
    const r = await sshVia(via, "web-1", "echo oops >&2; exit 7");
    assert.equal(r.code, 7);
    assert.equal(r.stderr, "oops\n");
    assert.equal(r.stdout, "");
  });

  it("refuses rm -rf / with exit 126 and the rule's name, and records it", async () => {
    const r = await sshVia(via, "web-1", "rm", "-rf", "/");
    assert.equal(r.code, 126, r.stderr);
    assert.match(r.stderr, /vigil: denied by agents\/no-recursive-delete-of-root/);
    const events = await eventually("the refused command in the recording", () =>
      sessionWithCommand(relayData(), /^rm -rf \/$/),
    );
    const cmd = events.find((e) => e.body?.$case === "command")!;
    assert.equal(cmd.body?.$case === "command" && cmd.body.value.rule, "agents/no-recursive-delete-of-root");
  });
});
