import { randomBytes, timingSafeEqual } from "node:crypto";
import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { ApprovalRequest, ControlRequest, ControlResponse, Hello } from "../../../proto/gen/vigil/v1/relay.js";
import { helloSigningPayload, verifyEd25519 } from "../../../lib/keys.js";
import type { Logger } from "../../../lib/log.js";
import type { TunnelBroker } from "../tunnels/broker.js";
import type { KeyPinStore } from "./key-pins.js";
import type { RelayRecord, RelayRegistry } from "./registry.js";

export interface ControlDeps {
  hubId: string;
  registry: RelayRegistry;
  pins: KeyPinStore;
  broker: TunnelBroker;
  enrollmentToken: string;
  heartbeatMs: number;
  /** A session on this relay holds a command for review. */
  onApprovalRequest(relay: RelayRecord, req: ApprovalRequest): void;
  log: Logger;
}

type ControlCall = ServerDuplexStream<ControlRequest, ControlResponse>;

const RELAY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Rejection of a Hello: the code is stable, the reason is for the relay's operator. */
class Rejection extends Error {
  constructor(
    readonly code: string,
    reason: string,
  ) {
    super(reason);
  }
}

/**
 * One relay's Control stream: challenge → Hello (enrollment, key proof) → Welcome, then heartbeats,
 * tunnel failures and drain notices until the stream ends.
 */
export function handleControl(call: ControlCall, deps: ControlDeps): void {
  const nonce = randomBytes(32);
  let record: RelayRecord | undefined;
  let log = deps.log.child({ peer: call.getPeer() });
  const helloTimer = setTimeout(() => reject("hello_timeout", "no Hello within 10 s"), 10_000);

  const reject = (code: string, reason: string) => {
    clearTimeout(helloTimer);
    log.warn({ code, reason }, "relay rejected");
    call.write({ msg: { $case: "reject", value: { code, reason } } });
    call.end();
  };

  call.write({ msg: { $case: "challenge", value: { nonce, hubId: deps.hubId } } });

  call.on("data", (req: ControlRequest) => {
    const msg = req.msg;
    if (!record) {
      if (msg?.$case !== "hello") return reject("protocol_error", "the first message must be Hello");
      clearTimeout(helloTimer);
      call.pause(); // hold later messages until enrollment (async: key pins) has settled
      enroll(msg.value, nonce, deps).then(
        () => {
          record = deps.registry.online({
            id: msg.value.relayId,
            segment: msg.value.segment,
            version: msg.value.version,
            capabilities: msg.value.capabilities,
            connections: msg.value.connections,
            publicKey: Buffer.from(msg.value.publicKey),
            send: (m) => call.write(m),
            disconnect: () => call.end(),
          });
          log = log.child({ relay: record.id, segment: record.segment });
          call.write({
            msg: { $case: "welcome", value: { hubId: deps.hubId, heartbeatIntervalMs: deps.heartbeatMs } },
          });
          log.info({ connections: record.connections.map((c) => c.name) }, "relay online");
          call.resume();
        },
        (err: unknown) => {
          if (err instanceof Rejection) reject(err.code, err.message);
          else reject("internal", "enrollment failed on the hub");
          if (!(err instanceof Rejection)) log.error({ err }, "enrollment error");
        },
      );
      return;
    }
    deps.registry.seen(record.id);
    switch (msg?.$case) {
      case "heartbeat":
        return;
      case "tunnelFailed":
        deps.broker.failed(msg.value.sessionId, record.id, msg.value.error);
        return;
      case "approvalRequest":
        deps.onApprovalRequest(record, msg.value);
        return;
      case "drain":
        deps.registry.setStatus(record, "draining");
        log.info({ reason: msg.value.reason }, "relay draining");
        return;
      default:
        log.warn({ kind: msg?.$case }, "unexpected message on Control stream");
    }
  });

  const gone = () => {
    clearTimeout(helloTimer);
    if (!record || record.status === "offline") return;
    deps.registry.setStatus(record, "offline");
    deps.broker.relayGone(record.id);
    log.info("relay offline");
  };
  call.on("end", () => {
    gone();
    call.end();
  });
  call.on("error", gone);
  call.on("cancelled", gone);
  call.on("close", gone);
}

async function enroll(hello: Hello, nonce: Buffer, deps: ControlDeps): Promise<void> {
  if (!RELAY_ID.test(hello.relayId)) throw new Rejection("bad_relay_id", `invalid relay_id "${hello.relayId}"`);
  if (!tokenMatches(hello.enrollmentToken, deps.enrollmentToken)) {
    throw new Rejection("bad_enrollment_token", "enrollment token is not valid for this hub");
  }
  const payload = helloSigningPayload(nonce, hello.relayId, hello.publicKey);
  if (hello.publicKey.length !== 32 || !verifyEd25519(hello.publicKey, payload, hello.signature)) {
    throw new Rejection("bad_signature", "Hello signature does not verify against the presented key");
  }
  const pinned = await deps.pins.pinOrGet(hello.relayId, Buffer.from(hello.publicKey));
  if (!pinned.equals(Buffer.from(hello.publicKey))) {
    throw new Rejection(
      "key_mismatch",
      `relay_id "${hello.relayId}" is enrolled with a different key; an impostor, or a relay whose key was replaced (remove its pin to re-enroll)`,
    );
  }
}

function tokenMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
