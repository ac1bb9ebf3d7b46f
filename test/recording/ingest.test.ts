// The ingest worker's JetStream consumer against a real nats-server.
import assert from "node:assert/strict";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createLogger } from "../../lib/log.js";
import { ensureRecordingStreams, INGEST_CONSUMER, RECORDING_STREAM } from "../../lib/recording/nats.js";
import { AckAddresses, replyBytes, sendToAll, writesRaw } from "../../hub/src/recordings/acks.js";
import { Ingest } from "../../hub/src/recordings/ingest.js";
import { startNats, type NatsHandle } from "../support/services.js";

const log = createLogger(process.env.VIGIL_TEST_LOG ?? "silent");

describe("ingest consumer", function () {
  this.timeout(30_000);
  let nats: NatsHandle;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });

  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("sets the in-flight limit of a consumer made by an older version to a batch inserting and one gathering", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureRecordingStreams(jsm);
    await jsm.consumers.add(RECORDING_STREAM, {
      durable_name: INGEST_CONSUMER,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 15e9,
      max_ack_pending: 20_000,
    });
    // 20,000: the first versions; 160,000: the versions before this one.
    for (const older of [20_000, 160_000]) {
      await jsm.consumers.update(RECORDING_STREAM, INGEST_CONSUMER, { max_ack_pending: older });
      // The stream is empty: the store is never needed.
      const ingest = new Ingest(nc, () => Promise.reject(new Error("no events were published")), log);
      await ingest.start();
      try {
        const info = await jsm.consumers.info(RECORDING_STREAM, INGEST_CONSUMER);
        assert.equal(info.config.max_ack_pending, 80_000, `from ${older}`);
        assert.equal(info.config.ack_policy, AckPolicy.Explicit, "acks stay per message");
      } finally {
        await ingest.stop();
      }
    }
  });

  it("acks a batch in one protocol write, and JetStream takes every ack", async () => {
    // The one write needs nats.js's protocol writer; without it each ack is its own publish.
    assert.ok(writesRaw(nc), "this nats.js has no protocol writer: ingest acks message by message");
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "ACKS", subjects: ["acks.>"] });
    const js = jetstream(nc);
    for (let i = 0; i < 50; i++) await js.publish(`acks.${i}`, Buffer.from(String(i)));
    await jsm.consumers.add("ACKS", { durable_name: "w", ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
    const consumer = await js.consumers.get("ACKS", "w");
    const acks = new AckAddresses();
    for await (const m of await consumer.fetch({ max_messages: 50, expires: 5_000 })) {
      acks.add(replyBytes(m));
      if (acks.count === 50) break;
    }
    let info = await consumer.info();
    assert.equal(info.num_ack_pending, 50);
    sendToAll(nc, acks, Buffer.from("+ACK"));
    await nc.flush();
    info = await consumer.info();
    assert.equal(info.num_ack_pending, 0, "every message acked");
    assert.equal(info.ack_floor.stream_seq, 50);
  });
});
