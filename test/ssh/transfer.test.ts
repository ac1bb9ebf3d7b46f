import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, writeFileSync } from "node:fs";
import { eventView } from "../../lib/recording/view.js";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { run } from "../support/services.js";
import { eventually, Workdir, type VigilProcess } from "../support/vigil.js";
import { recordedSessions, sshConfig, sshConnection, withToken, type SshVia } from "./support.js";

const POLICY = `policies:
  - name: agents
    match: { groups: [agents] }
    connect: true
    rules:
      - name: keep-protected-files
        effect: deny
        shell: { commands: [rm, mv], args: ["*/protected*"] }
`;

const SIZE = 100 * 1024 * 1024;

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("data", (d) => hash.update(d))
      .on("end", () => resolve(hash.digest("hex")))
      .on("error", reject);
  });
}

describe("scp and sftp through the jump host and the relay", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let via: SshVia;
  let source: string;
  let digest: string;
  const jump = () => `gw@127.0.0.1:${hub.sshPort}`;
  const remote = () => dir.file("remote");
  const relayData = () => dir.file("relay-xfer-relay-data");

  before(async () => {
    hub = await startHubProcess(dir, { policy: POLICY });
    relay = startRelayProcess(dir, { id: "xfer-relay", hub: hub.grpc, connections: [sshConnection("web-1")] });
    await waitForRelay(hub, "xfer-relay");
    const token = await createToken(hub, hub.adminToken, "agent-1", ["agents"]);
    via = { hub, token, config: sshConfig(dir, "xfer"), timeoutMs: 90_000 };
    source = dir.file("source.bin");
    const made = await run("sh", ["-c", `head -c ${SIZE} /dev/urandom > ${source}`]);
    assert.equal(made.code, 0, made.stderr);
    digest = await sha256(source);
    mkdirSync(remote());
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  it("scp (SFTP protocol) uploads 100 MiB intact, and the recording has the file and its size", async () => {
    const target = `${remote()}/scp-up.bin`;
    const r = await withToken(via, "scp", [
      "-F",
      via.config,
      "-J",
      jump(),
      source,
      `${testServices().sshd.user}@web-1:${target}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(target), digest);
    const put = await eventually("the upload's command and result", () => {
      for (const events of recordedSessions(relayData()).values()) {
        const views = events.map(eventView);
        const cmd = views.find((v) => v.type === "command" && v.text === `put ${target}`);
        const result = cmd && views.find((v) => v.type === "result" && v.command === cmd.command);
        if (cmd && result) return { cmd, result };
      }
      return undefined;
    });
    assert.equal(put.cmd.source, "sftp");
    assert.equal(put.result.bytes, SIZE);
  });

  it("scp -O (the scp protocol, an exec) downloads 100 MiB intact", async () => {
    const back = dir.file("scp-down.bin");
    const r = await withToken(via, "scp", [
      "-O",
      "-F",
      via.config,
      "-J",
      jump(),
      `${testServices().sshd.user}@web-1:${source}`,
      back,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(back), digest);
  });

  it("sftp puts and gets 100 MiB intact; a refused remove answers permission denied", async () => {
    writeFileSync(`${remote()}/protected.txt`, "keep me\n");
    const batch = dir.file("sftp.batch");
    const back = dir.file("sftp-down.bin");
    writeFileSync(
      batch,
      [
        `put ${source} ${remote()}/sftp-up.bin`,
        `get ${remote()}/sftp-up.bin ${back}`,
        `-rm ${remote()}/protected.txt`,
        "",
      ].join("\n"),
    );
    const r = await withToken(via, "sftp", [
      "-F",
      via.config,
      "-J",
      jump(),
      "-b",
      batch,
      `${testServices().sshd.user}@web-1`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(`${remote()}/sftp-up.bin`), digest);
    assert.equal(await sha256(back), digest);
    assert.match(r.stderr, /Permission denied|vigil: denied by agents\/keep-protected-files/);
    const list = await run("cat", [`${remote()}/protected.txt`]);
    assert.equal(list.stdout, "keep me\n");
  });
});
