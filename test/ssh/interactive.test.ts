import assert from "node:assert/strict";
import { toAsciicast } from "../../lib/recording/asciicast.js";
import { verifyChain, type RecordingEvent } from "../../lib/recording/chain.js";
import { eventView } from "../../lib/recording/view.js";
import { loadOrCreateKey } from "../../lib/keys.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { eventually, Workdir, type VigilProcess } from "../support/vigil.js";
import { sessionWithCommand, sshConfig, sshConnection, sshOnPty, type SshVia } from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: no-recursive-delete-of-root
        effect: deny
        shell: { commands: [rm], flags: [r, R, recursive], args: ["/"] }
      - name: emails-in-recording
        effect: mask
        mask: { detectors: [email], apply: record }
`;

const PROMPT = "[#$] $";

describe("an interactive ssh session on a real terminal", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let via: SshVia;
  const relayData = () => dir.file("relay-pty-relay-data");

  before(async () => {
    hub = await startHubProcess(dir, { policy: POLICY });
    relay = startRelayProcess(dir, { id: "pty-relay", hub: hub.grpc, connections: [sshConnection("web-1")] });
    await waitForRelay(hub, "pty-relay");
    const token = await createToken(hub, hub.adminToken, "agent-1", ["agents"]);
    via = { hub, token, config: sshConfig(dir, "pty", ["PreferredAuthentications keyboard-interactive,password"]) };
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  it("records each command line and the output, refuses a denied line before the shell runs it, and replays", async () => {
    const session = await sshOnPty(dir, via, "web-1", [
      { expect: PROMPT },
      { send: "export PS1='vigil-test$ '\r" },
      { expect: "vigil-test\\$ $" },
      { keys: "echo hello-from-pty" },
      { send: "\r" },
      { expect: "hello-from-pty\r\n[^\n]*vigil-test\\$ $" },
      // Edited with the arrow keys: the line is what the terminal shows, not what was typed.
      { keys: "echo abd\x1b[D\x1b[Dc" },
      { send: "\r" },
      { expect: "\racbd\r\n[^\n]*vigil-test\\$ $" },
      { send: "echo alice@example.com\r" },
      { expect: "\ralice@example.com\r\n[^\n]*vigil-test\\$ $" },
      { send: "rm -rf /\r" },
      { expect: "vigil: denied by agents/no-recursive-delete-of-root" },
      { expect: "vigil-test\\$ $" },
      { send: "exit 3\r" },
    ]);
    assert.equal(session.error, null, session.output);
    assert.equal(session.status, 3, session.output);

    const events: RecordingEvent[] = await eventually("the session's recording, ended", () => {
      const found = sessionWithCommand(relayData(), /^echo hello-from-pty$/);
      return found?.some((e) => e.body?.$case === "sessionEnd") ? found : undefined;
    });
    const views = events.map(eventView);
    const commands = views.filter((v) => v.type === "command").map((v) => [v.source, v.text, v.decision]);
    assert.deepEqual(commands, [
      ["shell", "export PS1='vigil-test$ '", "allow"],
      ["shell", "echo hello-from-pty", "allow"],
      ["shell", commands[2]![1], "allow"],
      ["shell", "echo [masked:email]", "allow"],
      ["shell", "rm -rf /", "deny"],
      ["shell", "exit 3", "allow"],
    ]);
    assert.equal(commands[2]![1], "echo acbd");
    const start = views.find((v) => v.type === "session_start")!;
    assert.deepEqual(start.params, { jump_user: "gw", login: "keyboard-interactive", destination: "web-1:22" });
    // What the engine learned after the start: the inner login, and the terminal it asked for.
    const params = Object.assign({}, ...views.filter((v) => v.type === "params").map((v) => v.params)) as Record<
      string,
      string
    >;
    assert.equal(params.term, "xterm", JSON.stringify(params));
    assert.equal(params.pty, "true");
    assert.ok(views.some((v) => v.type === "resize"));
    const shellResult = views.find((v) => v.type === "result" && v.command === 0);
    assert.equal(shellResult?.exitStatus, 3);

    // The recording verifies against the relay's own key, and replays to what the terminal showed
    // (with the email masked, as the policy says for the record).
    const relayKey = loadOrCreateKey(dir.file("relay-pty-relay.key")).publicRaw;
    assert.deepEqual(verifyChain(events, relayKey), { ok: true, events: events.length });
    const cast = toAsciicast(events).trimEnd().split("\n");
    const replayed = cast
      .slice(1)
      .map((l) => JSON.parse(l) as [number, string, string])
      .filter((f) => f[1] === "o")
      .map((f) => f[2])
      .join("");
    assert.equal(replayed, session.output.replaceAll("alice@example.com", "[masked:email]"));
    assert.ok(!replayed.includes("alice@example.com"));
  });
});
