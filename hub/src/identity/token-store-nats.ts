import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../../lib/log.js";
import { followBucket, recordOf } from "../kv-follow.js";
import { MemoryTokenStore, type TokenRecord } from "./token-store.js";

const BUCKET = "vigil_tokens";

/**
 * Cluster mode: token records in a NATS KV bucket shared by every hub. Each hub watches the bucket into
 * memory, so a revocation made at one hub is refused at every other one as soon as the update arrives.
 */
export class NatsTokenStore extends MemoryTokenStore {
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {
    super();
  }

  static async open(nc: NatsConnection, log: Logger): Promise<NatsTokenStore> {
    const kv = await new Kvm(nc).create(BUCKET, { history: 1 });
    const store = new NatsTokenStore(kv, log);
    store.stopWatch = await followBucket(kv, "token records", log, (entry) => store.apply(entry));
    return store;
  }

  protected async persist(record: TokenRecord): Promise<void> {
    await this.kv.put(record.id, JSON.stringify(record));
  }

  protected async forget(ids: string[]): Promise<void> {
    await Promise.all(ids.map((id) => this.kv.purge(id)));
  }

  override async close(): Promise<void> {
    await super.close();
    this.stopWatch?.();
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT") {
      this.records.delete(entry.key);
      return;
    }
    const incoming = recordOf<TokenRecord>(entry, "token", this.log);
    if (!incoming) return;
    // Revocation is final: an older write arriving late must not bring a revoked token back.
    const current = this.records.get(entry.key);
    this.records.set(entry.key, current?.revokedAt && !incoming.revokedAt ? current : incoming);
  }
}
