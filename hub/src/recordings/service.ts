import { VigilError } from "../../../lib/errors.js";
import type { VerifyResult } from "../../../lib/recording/chain.js";
import type { RecordingStore, SessionSummary } from "../../../storage/recordings.js";
import type { KeyPinStore } from "../relays/key-pins.js";
import type { Ingest } from "./ingest.js";
import type { LiveFeed } from "./live.js";

/** What the API needs for search, replay, verification and the live view. */
export class Recordings {
  constructor(
    private readonly opener: (() => Promise<RecordingStore>) | undefined,
    private readonly pins: KeyPinStore,
    readonly live: LiveFeed,
    readonly ingest: Ingest | undefined,
  ) {}

  /** The store, or a 503 saying why there is none. */
  store(): Promise<RecordingStore> {
    if (!this.opener) {
      return Promise.reject(
        new VigilError(
          "recording_unavailable",
          "this hub has no recording store: set storage.clickhouse (url or path) next to storage.nats",
        ),
      );
    }
    return this.opener();
  }

  async session(id: string): Promise<SessionSummary> {
    const session = await (await this.store()).getSession(id);
    if (!session) throw new VigilError("not_found", `no recorded session ${id}`);
    return session;
  }

  /** Check the chain and the relay's signature with the key this fleet pinned for that relay. */
  async verify(id: string): Promise<VerifyResult & { relayId: string }> {
    const session = await this.session(id);
    const key = (await this.pins.list()).get(session.relayId);
    const result = await (await this.store()).verifySession(id, key);
    return { ...result, relayId: session.relayId };
  }
}
