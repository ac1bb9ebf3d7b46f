import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { TunnelFrame } from "../../proto/gen/vigil/v1/tunnel.js";
import { VigilError } from "../../lib/errors.js";
import type { Logger } from "../../lib/log.js";
import { errorFrame, readFirstFrame } from "../../lib/tunnel/frames.js";
import type { Authenticator } from "./identity/identity.js";
import type { SessionRouter } from "./tunnels/sessions.js";
import { splice } from "./tunnels/splice.js";

export interface ConnectDeps {
  auth: Authenticator;
  sessions: SessionRouter;
  handshakeTimeoutMs: number;
  log: Logger;
}

/** ClientService.Connect: `vigil connect` — token in metadata, `open` frame, then bytes to the relay. */
export async function handleConnect(
  call: ServerDuplexStream<TunnelFrame, TunnelFrame>,
  deps: ConnectDeps,
): Promise<void> {
  const peer = call.getPeer();
  let log = deps.log.child({ peer });
  try {
    const identity = await deps.auth.verifyBearer(call.metadata.get("authorization")[0]?.toString());
    const first = await readFirstFrame(call, "client_gone", deps.handshakeTimeoutMs);
    if (first.frame?.$case !== "open") throw new VigilError("protocol_error", "the first frame must be open");
    const connection = first.frame.value.connection;
    const session = await deps.sessions.open(identity, connection, peer);
    log = log.child({ session: session.id, user: identity.subject, connection, relay: session.relay.id });
    log.info("session started");
    call.write({
      frame: {
        $case: "established",
        value: { sessionId: session.id, relayId: session.relay.id, segment: session.relay.segment },
      },
    });
    const result = await splice(
      { call, lostCode: "client_gone", name: "client" },
      { call: session.tunnel, lostCode: "relay_lost", name: `relay ${session.relay.id}` },
    );
    session.release();
    log.info({ bytesUp: result.bytesUp, bytesDown: result.bytesDown, error: result.error }, "session ended");
  } catch (err) {
    const e = err instanceof VigilError ? err : new VigilError("internal", "hub failed to open the session");
    if (!(err instanceof VigilError)) log.error({ err }, "connect failed");
    else log.info({ code: e.code, reason: e.message }, "connect refused");
    call.write(errorFrame(e.code, e.message));
    call.end();
  }
}
