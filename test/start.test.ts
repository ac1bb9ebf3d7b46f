import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { freePort } from "./support/services.js";
import { echoServer } from "./support/targets.js";
import { dial, echoRoundTrip, startConnect } from "./support/mesh.js";
import { api, REPO, VigilProcess, Workdir } from "./support/vigil.js";

describe("npm start", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let up: VigilProcess | undefined;

  after(async () => {
    // npm runs vigil as its child: signal the whole process group.
    const group = up?.child.pid;
    if (group && up!.child.exitCode === null) process.kill(-group, "SIGTERM");
    await up?.exited;
    // npm may exit before vigil, its child, has closed the embedded store: wait for the whole group.
    if (group) await groupGone(group, 20_000);
    dir.cleanup();
  });

  it("starts hub and relay in one process, writes an admin token and prints where to connect", async () => {
    const [apiPort, grpcPort, pgPort] = [await freePort(), await freePort(), await freePort()];
    const echo = await echoServer();
    const data = dir.file("data");
    const child = spawn("npm", ["start", "--silent"], {
      cwd: REPO,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        VIGIL_LISTEN_API: `127.0.0.1:${apiPort}`,
        VIGIL_LISTEN_GRPC: `127.0.0.1:${grpcPort}`,
        VIGIL_LISTEN_POSTGRES: `127.0.0.1:${pgPort}`,
        VIGIL_LISTEN_SSH: `127.0.0.1:${await freePort()}`,
        VIGIL_STORAGE_EMBEDDED_PATH: data,
        VIGIL_RELAY_CONNECTIONS: JSON.stringify([{ name: "echo", type: "tcp", target: echo.address }]),
      },
    });
    up = new VigilProcess(child, "npm start");
    await up.waitFor(
      /Connect:\n {2}export VIGIL_TOKEN=\$\(cat .*admin\.token\)\n {2}npx vigil connect echo --port 6543 --hub http:\/\/127\.0\.0\.1:\d+/,
      60_000,
    );
    assert.match(up.stdout, new RegExp(`API +http://127\\.0\\.0\\.1:${apiPort}`));
    assert.match(up.stdout, /connections +echo \(tcp → 127\.0\.0\.1:\d+\)/);

    const tokenFile = `${data}/admin.token`;
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const admin = readFileSync(tokenFile, "utf8").trim();
    const relays = await api(`http://127.0.0.1:${apiPort}`, "/api/v1/relays", admin);
    assert.deepEqual(
      (relays.body.relays as { id: string; segment: string; status: string }[]).map((r) => [r.id, r.segment, r.status]),
      [["local", "local", "online"]],
    );

    // And the printed instructions work: vigil connect with the admin token reaches the target.
    const port = await freePort();
    const hub = { api: `http://127.0.0.1:${apiPort}` } as Parameters<typeof startConnect>[0];
    const connect = await startConnect(hub, admin, "echo", port);
    const socket = await dial(port);
    assert.equal((await echoRoundTrip(socket, Buffer.from("hello vigil"))).toString(), "hello vigil");
    socket.destroy();
    await connect.stop();
    await echo.close();
  });
});

/** Resolves once no process of the group is left (SIGKILL to the rest after `timeoutMs`). */
async function groupGone(group: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // A zombie nobody reaps still answers kill(0): give up a while after the SIGKILL.
  while (Date.now() < deadline + 5_000) {
    try {
      process.kill(-group, Date.now() > deadline ? "SIGKILL" : 0);
    } catch {
      return; // ESRCH: the group is empty
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
