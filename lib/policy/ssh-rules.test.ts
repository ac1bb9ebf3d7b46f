import assert from "node:assert/strict";
import type { ShellCommand, SshEnvCommand, SshForwardCommand } from "./command.js";
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

const env = (name: string, value: string): SshEnvCommand => ({
  protocol: "ssh-env",
  name,
  text: `env ${name}=${value}`,
});

function decide(yaml: string, cmd: SshForwardCommand | SshEnvCommand | ShellCommand) {
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

const ENV_POLICY = `policies:
  - name: sre
    match: { groups: [sre] }
    connect: true
    rules:
      - name: app-settings
        effect: allow
        ssh: { env: ["APP_*", "TZ"] }
      - name: no-app-secrets
        effect: deny
        ssh: { env: ["APP_SECRET*"] }
`;

describe("ssh environment variables in policy", () => {
  it("allows the names a rule lists, by glob; deny wins", () => {
    const d = decide(ENV_POLICY, env("APP_MODE", "blue"));
    assert.equal(d.effect === "allow" && d.rule, "sre/app-settings");
    assert.equal(decide(ENV_POLICY, env("TZ", "UTC")).effect, "allow");
    assert.equal(decide(ENV_POLICY, env("APP_SECRET_KEY", "x")).effect, "deny");
  });

  it("leaves other names without an allowing rule, and never mixes with forwards or commands", () => {
    const other = decide(ENV_POLICY, env("TZDIR", "/x"));
    assert.deepEqual([other.effect, "rule" in other ? other.rule : undefined], ["allow", undefined]);
    const fwd = decide(ENV_POLICY, forward("local", "APP_MODE", 1));
    assert.deepEqual([fwd.effect, "rule" in fwd ? fwd.rule : undefined], ["allow", undefined]);
    const viaForwardRule = decide(POLICY, env("APP_MODE", "blue"));
    assert.deepEqual(
      [viaForwardRule.effect, "rule" in viaForwardRule ? viaForwardRule.rule : undefined],
      ["allow", undefined],
    );
  });

  it("rejects a rule with both forward and env, or neither, or hosts without forward", () => {
    for (const bad of [
      'ssh: { env: ["APP_*"], forward: [local] }',
      "ssh: {}",
      'ssh: { env: ["APP_*"], hosts: ["*:1"] }',
    ]) {
      assert.throws(
        () => parsePolicyFile(ENV_POLICY.replace('ssh: { env: ["APP_*", "TZ"] }', bad), "p.yaml"),
        (err: unknown) => err instanceof PolicyError && /p\.yaml:\d+/.test(err.message),
        bad,
      );
    }
  });
});

describe("shell argument globs", () => {
  it("match across a newline in an argument (a file name may hold one)", () => {
    const policy = `policies:
  - name: sre
    match: { groups: [sre] }
    connect: true
    rules:
      - name: keep-protected
        effect: deny
        shell: { commands: [rm], args: ["*/protected/*"] }
`;
    const rm = (arg: string): ShellCommand => ({
      protocol: "shell",
      commands: [{ argv: ["rm", arg], env: {} }],
      text: `rm '${arg}'`,
    });
    assert.equal(decide(policy, rm("/srv/protected/\nkeep")).effect, "deny");
    assert.equal(decide(policy, rm("\n/srv/protected/keep")).effect, "deny");
    assert.equal(decide(policy, rm("/srv/open/keep")).effect, "allow");
  });
});
