import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { testServices } from "../support/env.js";
import { createToken, startHubProcess, startRelayProcess, waitForRelay, type HubHandle } from "../support/mesh.js";
import { Workdir, type VigilProcess } from "../support/vigil.js";
import { direct, pgClient, RawClient, relayCredentials } from "./support.js";

/** xorshift32: the same "random" frames on every run, so a failure can be replayed. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** A valid frontend message, then mutated: bit flips, a corrupted length, truncation or junk. */
function mutatedFrame(rand: () => number): Buffer {
  const valid = [
    Buffer.from("Q\0\0\0\x0dSELECT 1;\0"),
    Buffer.from("P\0\0\0\x16\0SELECT $1::int\0\0\0"),
    Buffer.from("B\0\0\0\x0c\0\0\0\0\0\0\0\0"),
    Buffer.from("E\0\0\0\x09\0\0\0\0\0"),
    Buffer.from("S\0\0\0\x04"),
    Buffer.from("d\0\0\0\x08abcd"),
  ];
  const frame = Buffer.from(valid[Math.floor(rand() * valid.length)]!);
  switch (Math.floor(rand() * 4)) {
    case 0:
      for (let i = 0; i < 3; i++) frame[Math.floor(rand() * frame.length)]! ^= 1 << Math.floor(rand() * 8);
      return frame;
    case 1:
      frame.writeInt32BE(Math.floor(rand() * 0x7fffffff) - 0x3fffffff, 1);
      return frame;
    case 2:
      return frame.subarray(0, 1 + Math.floor(rand() * (frame.length - 1)));
    default:
      return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
  }
}

describe("postgres path under bad input and big values", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let agent: string;

  before(async () => {
    const admin = await direct("postgres");
    await admin.query("DROP DATABASE IF EXISTS vigil_fuzz WITH (FORCE)");
    await admin.query("CREATE DATABASE vigil_fuzz");
    await admin.end();
    hub = await startHubProcess(dir, { policy: "policies:\n  - name: all\n    connect: true\n" });
    relay = startRelayProcess(dir, {
      id: "pg-fuzz",
      hub: hub.grpc,
      connections: [
        {
          name: "pg",
          type: "postgres",
          target: `127.0.0.1:${testServices().pg.port}`,
          credentials: relayCredentials(),
        },
      ],
    });
    await waitForRelay(hub, "pg-fuzz");
    agent = await createToken(hub, hub.adminToken, "fuzzer", []);
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    dir.cleanup();
  });

  it("random and mutated frames, before and after login, end only their own sessions", async () => {
    const keep = await pgClient(hub.pgPort, "pg", agent, "vigil_fuzz");
    const rand = prng(0x5eed);
    try {
      // Before login: garbage where the startup packet belongs goes to the hub's front door.
      const frames = Array.from({ length: 40 }, () => mutatedFrame(rand));
      await Promise.all(
        frames.map(async (frame) => {
          const socket = netConnect({ host: "127.0.0.1", port: hub.pgPort });
          socket.on("error", () => {});
          await new Promise<void>((r) => socket.once("connect", () => r()));
          socket.end(frame);
          // An incomplete packet keeps the hub waiting for more (until its handshake timeout): stop here.
          await new Promise<void>((r) => {
            socket.once("close", () => r());
            setTimeout(() => (socket.destroy(), r()), 1000);
          });
        }),
      );
      // After login: the relay's engine parses every frame, 30 sessions at once.
      const bursts = Array.from({ length: 30 }, () => Array.from({ length: 5 }, () => mutatedFrame(rand)));
      const errors = await Promise.all(
        bursts.map(async (burst) => {
          const raw = await RawClient.open(hub.pgPort, "pg", agent, "vigil_fuzz");
          try {
            for (const frame of burst) raw.socket.write(frame);
            raw.socket.write(Buffer.from("Q\0\0\0\x0dSELECT 1;\0"));
            return await raw.until(0x45, 2000).then(
              (m) => raw.errorOf(m),
              () => undefined,
            );
          } finally {
            raw.close();
          }
        }),
      );
      const refused = errors.filter((e) => e !== undefined);
      for (const error of refused) {
        assert.match(error.C ?? "", /^[0-9A-Z]{5}$/);
        assert.notEqual(error.C, "XX000", `an internal error instead of a protocol error: ${JSON.stringify(error)}`);
      }
      assert.ok(refused.length > 10, `most mutated sessions were refused (${refused.length}/30)`);
      const { rows } = await keep.query("SELECT 'alive' AS s");
      assert.equal(rows[0].s, "alive");
      assert.equal(relay.child.exitCode, null, "the relay is still running");
      assert.equal(hub.proc.child.exitCode, null, "the hub is still running");
    } finally {
      await keep.end();
    }
  });

  it("a session that cannot be recorded does not start (58030); recording back, sessions start again", async () => {
    const recordings = dir.file("relay-pg-fuzz-data/recordings");
    rmSync(recordings, { recursive: true, force: true });
    try {
      await assert.rejects(
        pgClient(hub.pgPort, "pg", agent, "vigil_fuzz"),
        (err: { code?: string; message: string }) => {
          assert.equal(err.code, "58030");
          assert.match(err.message, /cannot be recorded/);
          return true;
        },
      );
    } finally {
      mkdirSync(recordings, { recursive: true, mode: 0o700 });
    }
    const c = await pgClient(hub.pgPort, "pg", agent, "vigil_fuzz");
    await c.end();
  });

  it("a 64 MiB parameter and a 64 MiB result value pass through intact", async () => {
    const c = await pgClient(hub.pgPort, "pg", agent, "vigil_fuzz");
    try {
      const big = "x".repeat(64 * 1024 * 1024 - 3) + "end";
      const { rows } = await c.query("SELECT length($1::text) AS n, md5($1::text) AS h, right($1::text, 3) AS tail", [
        big,
      ]);
      assert.equal(rows[0].n, big.length);
      assert.equal(rows[0].tail, "end");
      const back = await c.query("SELECT repeat('y', 64 * 1024 * 1024) AS v");
      assert.equal(back.rows[0].v.length, 64 * 1024 * 1024);
    } finally {
      await c.end();
    }
  });
});
