// A real relay process configured with storage.nats ships every session's recording to JetStream,
// and keeps it in its spool while NATS is down.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { loadOrCreateKey } from "../../lib/keys.js";
import { RecordingEvent, verifyChain } from "../../lib/recording/chain.js";
import { RECORDING_STREAM } from "../../lib/recording/nats.js";
import { freePort, startNats, type NatsHandle } from "../support/services.js";
import { echoServer, type Target } from "../support/targets.js";
import { eventually, Workdir, type VigilProcess } from "../support/vigil.js";
import {
  createToken,
  dial,
  echoRoundTrip,
  startConnect,
  startHubProcess,
  startRelayProcess,
  waitForRelay,
  type HubHandle,
} from "../support/mesh.js";

/** Stored events by session, in stream order. */
async function sessionsInStream(url: string): Promise<Map<string, RecordingEvent[]>> {
  const out = new Map<string, RecordingEvent[]>();
  const nc = await connect({ servers: url });
  try {
    const { state } = await (await jetstreamManager(nc)).streams.info(RECORDING_STREAM);
    if (state.messages === 0) return out;
    const consumer = await jetstream(nc).consumers.get(RECORDING_STREAM, { deliver_policy: DeliverPolicy.All });
    for await (const m of await consumer.consume()) {
      const e = RecordingEvent.decode(m.data);
      out.set(e.sessionId, [...(out.get(e.sessionId) ?? []), e]);
      if (m.info.pending === 0) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe("relay recordings through JetStream (real hub, relay and nats-server)", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let nats: NatsHandle;
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;
  let token: string;
  const connects: VigilProcess[] = [];
  const spoolDir = dir.file("relay-spool");
  const keyFile = dir.file("relay-rec.key");

  before(async () => {
    nats = await startNats();
    echo = await echoServer();
    hub = await startHubProcess(dir);
    relay = startRelayProcess(dir, {
      id: "relay-rec",
      hub: hub.grpc,
      segment: "seg-rec",
      keyFile,
      connections: [{ name: "echo", type: "tcp", target: echo.address }],
      storage: { nats: { url: nats.url } },
      topLevel: { recording: { spool: { dir: spoolDir } } },
    });
    await waitForRelay(hub, "relay-rec");
    token = await createToken(hub, hub.adminToken, "agent-rec", ["dev"]);
  });

  after(async () => {
    await Promise.all(connects.map((c) => c.stop()));
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    await nats?.stop();
    dir.cleanup();
  });

  /** One session through `vigil connect`: an echo round trip, then the client hangs up. */
  async function session(): Promise<void> {
    const port = await freePort();
    const connect = await startConnect(hub, token, "echo", port);
    connects.push(connect);
    const socket = await dial(port);
    const payload = Buffer.from("recorded through JetStream\n");
    assert.deepEqual(await echoRoundTrip(socket, payload), payload);
    socket.destroy();
  }

  /** Sessions whose recording is complete (ends with session_end) and verifies with the relay's key. */
  async function verifiedSessions(): Promise<string[]> {
    const relayKey = loadOrCreateKey(keyFile).publicRaw;
    const done: string[] = [];
    for (const [id, events] of await sessionsInStream(nats.url)) {
      const verdict = verifyChain(events, relayKey);
      if (verdict.ok) done.push(id);
      else if (events.at(-1)?.body?.$case === "sessionEnd") assert.fail(`${id}: ${verdict.reason}`);
    }
    return done.sort();
  }

  it("ships each session's signed chain to the stream", async () => {
    await session();
    const ids = await eventually("a verified recording in JetStream", async () => {
      const ids = await verifiedSessions();
      return ids.length === 1 ? ids : undefined;
    });
    const events = (await sessionsInStream(nats.url)).get(ids[0]!)!;
    assert.equal(events[0]!.body?.$case, "sessionStart");
    assert.equal(events[0]!.body?.$case === "sessionStart" && events[0]!.body.value.segment, "seg-rec");
  });

  it("keeps a session's events in its spool while NATS is down and ships them once it is back", async () => {
    await nats.kill();
    await session();
    await eventually("events in the relay's spool", () =>
      readdirSync(spoolDir).some((f) => f.endsWith(".spool")) ? true : undefined,
    );
    await nats.restart();
    await eventually("both recordings verified in JetStream", async () =>
      (await verifiedSessions()).length === 2 ? true : undefined,
    );
    await eventually("spool files removed", () =>
      readdirSync(spoolDir).some((f) => f.endsWith(".spool")) ? undefined : true,
    );
  });
});
