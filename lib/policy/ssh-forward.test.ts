import assert from "node:assert/strict";
import type { SshForwardCommand } from "./command.js";
import { compilePolicy, type PolicyConnection } from "./compile.js";
import { evaluate, preparePolicy } from "./evaluate.js";
import { parsePolicyFile, PolicyError } from "./load.js";

const forward = (direction: "local" | "remote", host: string, port: number): SshForwardCommand => ({
  protocol: "ssh-forward",
  direction,
  host,
  port,
  text: `forward ${direction} ${host}:${port}`,
});

const web: PolicyConnection = { name: "web-1", type: "ssh", labels: {}, segment: "s" };
const who = { subject: "alice", groups: ["sre"] };

function decide(yaml: string, cmd: SshForwardCommand) {
  const set = { policies: parsePolicyFile(yaml, "p.yaml"), files: [] };
  return evaluate(preparePolicy(compilePolicy(set, who, web)), cmd);
}

const POLICY = `policies:
  - name: sre
    match: { groups: [sre] }
    connect: true
    rules:
      - name: tunnel-to-metrics
        effect: allow
        ssh: { forward: [local], hosts: ["127.0.0.1:9*", "metrics.internal:*"] }
      - name: no-forward-to-db
        effect: deny
        ssh: { forward: [local, remote], hosts: ["*:5432"] }
`;

describe("ssh port forwarding in policy", () => {
  it("allows a local forward a rule names, by direction and host:port globs", () => {
    const d = decide(POLICY, forward("local", "127.0.0.1", 9090));
    assert.equal(d.effect, "allow");
    assert.equal(d.effect === "allow" && d.rule, "sre/tunnel-to-metrics");
  });

  it("leaves other forwards without an allowing rule (the engine refuses them), and deny wins", () => {
    const other = decide(POLICY, forward("remote", "127.0.0.1", 9090));
    assert.deepEqual([other.effect, "rule" in other ? other.rule : undefined], ["allow", undefined]);
    assert.equal(decide(POLICY, forward("local", "db", 5432)).effect, "deny");
  });

  it("shell rules never match a forward, and forward rules never match a command line", () => {
    const shellOnly = POLICY.replace(
      'ssh: { forward: [local, remote], hosts: ["*:5432"] }',
      "shell: { commands: [nc] }",
    );
    assert.equal(decide(shellOnly, forward("local", "db", 5432)).effect, "allow");
  });

  it("rejects an unknown direction with the file and line", () => {
    assert.throws(
      () => parsePolicyFile(POLICY.replace("forward: [local]", "forward: [sideways]"), "p.yaml"),
      (err: unknown) => err instanceof PolicyError && /p\.yaml:\d+/.test(err.message),
    );
  });
});
