import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { run } from "../support/services.js";
import { api, eventually, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import { pendingApproval } from "../postgres/support.js";
import { echoServer } from "../support/targets.js";
import { sessionWithCommand, sshConfig, sshConnection, sshVia, type SshVia } from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents], connections: [{ labels: { team: web } }] }
    connect: true
    rules:
      - name: no-recursive-delete-of-root
        effect: deny
        shell: { commands: [rm], flags: [r, R, recursive], args: ["/"] }
      - name: review-service-restarts
        effect: review
        approvers: { groups: [vigil-admins], count: 1, timeout: 2m }
        shell: { commands: [systemctl, touch] }
      - name: cards-never-leave
        effect: mask
        mask: { detectors: [card], apply: both }
      - name: tunnel-to-local-services
        effect: allow
        ssh: { forward: [local], hosts: ["127.0.0.1:*"] }
`;

const WEB = { team: "web" };

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
    relay = startRelayProcess(dir, {
      id: "ssh-relay",
      hub: hub.grpc,
      connections: [sshConnection("web-1", WEB), sshConnection("web-secret")],
    });
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

  it("masks output live and in the recording where the policy says", async () => {
    const r = await sshVia(via, "web-1", "echo", "card 4111 1111 1111 1111 on file");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "card [masked:card] on file\n");
    const events = await eventually("the session's recording, ended", () => {
      const found = sessionWithCommand(relayData(), /^echo card \[masked:card\] on file$/);
      return found?.some((e) => e.body?.$case === "sessionEnd") ? found : undefined;
    });
    const output = events.flatMap((e) => (e.body?.$case === "output" ? [e.body.value.data] : [])).join("");
    assert.equal(output, "card [masked:card] on file\n");
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

  it("holds a reviewed command until it is approved through the API, then runs it", async () => {
    const marker = dir.file("approved-marker");
    const held = sshVia({ ...via, timeoutMs: 60_000 }, "web-1", "touch", marker, "&&", "echo", "done");
    const id = await pendingApproval(hub.api, hub.adminToken, /^touch /);
    assert.equal(existsSync(marker), false, "the command ran before its approval");
    const ok = await api(hub.api, `/api/v1/approvals/${id}/approve`, hub.adminToken, {
      method: "POST",
      body: { reason: "planned" },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const r = await held;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`vigil: waiting for approval ${id} \\(rule agents/review-service-restarts\\)`));
    assert.equal(r.stdout, "done\n");
    assert.equal(existsSync(marker), true);
  });

  it("vigil ssh-config pins the jump host's and the relay's host keys, and its block works as is", async () => {
    const knownHosts = dir.file("vigil_known_hosts");
    const cfg = spawnVigil("ssh-config", ["ssh-config", "--known-hosts", knownHosts, "--hub", hub.api], {
      VIGIL_TOKEN: token,
    });
    assert.equal((await cfg.exited).code, 0, cfg.stderr);
    assert.match(cfg.stdout, /ProxyJump vigil@127\.0\.0\.1:\d+/);
    const lines = readFileSync(knownHosts, "utf8").trim().split("\n");
    assert.ok(
      lines.some((l) => l.startsWith(`[127.0.0.1]:${hub.sshPort} ssh-ed25519 `)),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => l.startsWith("web-1 ssh-ed25519 ")),
      lines.join("\n"),
    );
    const config = dir.file("from-ssh-config");
    writeFileSync(
      config,
      cfg.stdout + "Host *\n  PreferredAuthentications password\n  PubkeyAuthentication no\n  LogLevel ERROR\n",
    );
    const r = await run(
      "sshpass",
      ["-e", "ssh", "-v", "-F", config, `${testServices().sshd.user}@web-1`, "echo", "pinned"],
      { env: { ...process.env, SSHPASS: token } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "pinned\n");
    // Both SSH layers (to the jump host, and through it to the relay) take AES-GCM, as the block asks.
    const ciphers = [...r.stderr.matchAll(/kex: client->server cipher: (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(ciphers, ["aes128-gcm@openssh.com", "aes128-gcm@openssh.com"], r.stderr);
  });

  it("forwards a port (ssh -W, a local forward) only where a rule allows it", async () => {
    const echo = await echoServer();
    try {
      const ok = await sshVia({ ...via, input: "ping\n", options: ["-W", echo.address] }, "web-1");
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, "ping\n");
      const refused = await sshVia({ ...via, input: "ping\n", options: ["-W", `localhost:${echo.port}`] }, "web-1");
      assert.equal(refused.code, 255);
      assert.equal(refused.stdout, "");
      const events = await eventually("the refused forward in the recording", () =>
        sessionWithCommand(relayData(), /^forward local localhost:\d+$/),
      );
      const cmd = events.find((e) => e.body?.$case === "command")!;
      assert.equal(cmd.body?.$case === "command" && cmd.body.value.rule, "vigil/not-allowed-by-any-rule");
    } finally {
      await echo.close();
    }
  });

  describe("refusals the client can read", () => {
    it("a bad token: the jump host says why in a banner", async () => {
      const config = sshConfig(dir, "bad-token", ["NumberOfPasswordPrompts 1"]);
      const r = await sshVia({ ...via, token: "not-a-token", config: withLogLevel(config, "INFO") }, "web-1", "true");
      assert.equal(r.code, 255);
      assert.match(r.stderr, /vigil: token refused: /);
      assert.match(r.stderr, /Permission denied/);
    });

    it("a key not registered to any identity, then the same key once registered, then removed", async () => {
      const key = dir.file("agent_ed25519");
      const gen = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
      assert.equal(gen.code, 0, gen.stderr);
      const config = withLogLevel(sshConfig(dir, "key", [`IdentityFile ${key}`, "BatchMode yes"]), "INFO", [
        "PubkeyAuthentication yes",
        "PreferredAuthentications publickey",
      ]);
      const keyVia = { hub, config };
      const refused = await sshVia(keyVia, "web-1", "true");
      assert.equal(refused.code, 255);
      assert.match(refused.stderr, /vigil: key SHA256:\S+ is not registered to any identity \(vigil ssh-key add\)/);

      const add = spawnVigil("ssh-key add", ["ssh-key", "add", `${key}.pub`, "--name", "laptop", "--hub", hub.api], {
        VIGIL_TOKEN: token,
      });
      assert.equal((await add.exited).code, 0, add.stderr);
      const r = await sshVia(keyVia, "web-1", "echo", "with a key");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "with a key\n");

      const list = spawnVigil("ssh-key list", ["ssh-key", "list", "--hub", hub.api], { VIGIL_TOKEN: token });
      assert.equal((await list.exited).code, 0, list.stderr);
      assert.match(list.stdout, /SHA256:\S+\s+agent-1\s+laptop/);
      const remove = spawnVigil("ssh-key remove", ["ssh-key", "remove", add.stdout.trim(), "--hub", hub.api], {
        VIGIL_TOKEN: token,
      });
      assert.equal((await remove.exited).code, 0, remove.stderr);
      assert.equal((await sshVia(keyVia, "web-1", "true")).code, 255);
    });

    it("a registered key stops logging in when its registration expires; registering it again renews it", async () => {
      const key = dir.file("short_ed25519");
      assert.equal((await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])).code, 0);
      const config = withLogLevel(sshConfig(dir, "short-key", [`IdentityFile ${key}`, "BatchMode yes"]), "INFO", [
        "PubkeyAuthentication yes",
        "PreferredAuthentications publickey",
      ]);
      const register = async (ttl: string) => {
        const add = spawnVigil("ssh-key add", ["ssh-key", "add", `${key}.pub`, "--ttl", ttl, "--hub", hub.api], {
          VIGIL_TOKEN: token,
        });
        const done = await add.exited;
        return { ...done, stdout: add.stdout, stderr: add.stderr };
      };
      const tooLong = await register("400d");
      assert.notEqual(tooLong.code, 0);
      assert.match(tooLong.stderr, /longer than 365d/);

      // A short registration through the API (the CLI's own start-up would eat most of it).
      const publicKey = readFileSync(`${key}.pub`, "utf8").trim();
      const zero = await api(hub.api, "/api/v1/ssh-keys", token, { method: "POST", body: { publicKey, ttl: "0" } });
      assert.equal(zero.status, 400, JSON.stringify(zero.body));
      assert.match(JSON.stringify(zero.body), /ttl: duration must be positive/);
      const added = await api(hub.api, "/api/v1/ssh-keys", token, { method: "POST", body: { publicKey, ttl: "5s" } });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      const until = added.body.expiresAt as string;
      assert.ok(Date.parse(until) > Date.now() && Date.parse(until) <= Date.now() + 5000, until);
      const ok = await sshVia({ hub, config }, "web-1", "echo", "still valid");
      assert.equal(ok.code, 0, ok.stderr);

      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(until) - Date.now()) + 100));
      const expired = await sshVia({ hub, config }, "web-1", "true");
      assert.equal(expired.code, 255);
      assert.match(expired.stderr, /vigil: key SHA256:\S+ expired at \S+ \(register it again: vigil ssh-key add\)/);

      assert.equal((await register("1h")).code, 0);
      const renewed = await sshVia({ hub, config }, "web-1", "echo", "renewed");
      assert.equal(renewed.code, 0, renewed.stderr);
      assert.equal(renewed.stdout, "renewed\n");
    });

    // OpenSSH prints a channel's refusal reason at LogLevel INFO.
    const verbose = () => ({ ...via, config: withLogLevel(sshConfig(dir, "info"), "INFO") });

    it("a connection the caller may not reach", async () => {
      const r = await sshVia(verbose(), "web-secret", "true");
      assert.equal(r.code, 255);
      assert.match(r.stderr, /administratively prohibited: vigil: no policy grants agent-1 connect to "web-secret"/);
    });

    it("a shell on the jump host itself", async () => {
      const r = await run(
        "sshpass",
        ["-e", "ssh", "-F", verbose().config, "-p", String(hub.sshPort), "gw@127.0.0.1", "true"],
        {
          env: { ...process.env, SSHPASS: token },
        },
      );
      assert.equal(r.code, 255);
      assert.match(r.stderr, /the Vigil jump host runs no shell/);
    });

    it("a dead relay", async () => {
      const dying = startRelayProcess(dir, {
        id: "dying-relay",
        hub: hub.grpc,
        connections: [sshConnection("web-2", WEB)],
      });
      await waitForRelay(hub, "dying-relay");
      await dying.stop("SIGKILL");
      await waitForRelay(hub, "dying-relay", "offline");
      const r = await sshVia(verbose(), "web-2", "true");
      assert.equal(r.code, 255);
      assert.match(r.stderr, /administratively prohibited: vigil: .*(offline|no relay)/);
    });
  });
});

/** The same config with another LogLevel (banners show at INFO) and lines that win over the defaults (first wins). */
function withLogLevel(file: string, level: string, first: string[] = []): string {
  const text = readFileSync(file, "utf8");
  const lines = first.map((l) => `  ${l}`).join("\n");
  writeFileSync(
    file,
    text.replace("Host *\n", `Host *\n${lines ? lines + "\n" : ""}`).replace(/LogLevel \w+/, `LogLevel ${level}`),
  );
  return file;
}
