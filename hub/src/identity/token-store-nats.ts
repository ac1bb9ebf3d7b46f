import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import type { Logger } from "../../../lib/log.js";
import { MemoryTokenStore, type TokenRecord } from "./token-store.js";

const BUCKET = "vigil_tokens";
const INITIAL_LOAD_TIMEOUT_MS = 10_000;

/**
 * Cluster mode: token records in a NATS KV bucket shared by every hub. Each hub watches the bucket into
 * memory, so a revocation made at one hub is refused at every other one as soon as the update arrives.
 */
export class NatsTokenStore extends MemoryTokenStore {
  private watcher?: QueuedIterator<KvWatchEntry>;

  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {
    super();
  }

  static async open(nc: NatsConnection, log: Logger): Promise<NatsTokenStore> {
    const kv = await new Kvm(nc).create(BUCKET, { history: 1 });
    const store = new NatsTokenStore(kv, log);
    await store.watch();
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
    this.watcher?.stop();
  }

  /** Follow the bucket; resolves once the entries that existed at start are in memory. */
  private async watch(): Promise<void> {
    const existing = (await this.kv.status()).values;
    this.watcher = await this.kv.watch();
    let loaded!: () => void;
    const initial = new Promise<void>((resolve) => (loaded = resolve));
    if (existing === 0) loaded();
    void (async () => {
      for await (const entry of this.watcher!) {
        this.apply(entry);
        if (entry.isUpdate) loaded();
      }
    })().catch((err: unknown) => this.log.error({ err }, "token records watch ended"));
    const timer = setTimeout(() => {
      this.log.warn("token records: initial load from NATS is slow; continuing while it completes");
      loaded();
    }, INITIAL_LOAD_TIMEOUT_MS);
    await initial;
    clearTimeout(timer);
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT") {
      this.records.delete(entry.key);
      return;
    }
    let incoming: TokenRecord;
    try {
      incoming = entry.json<TokenRecord>();
    } catch {
      this.log.warn({ key: entry.key }, "token records: ignoring an entry that is not JSON");
      return;
    }
    // Revocation is final: an older write arriving late must not bring a revoked token back.
    const current = this.records.get(entry.key);
    this.records.set(entry.key, current?.revokedAt && !incoming.revokedAt ? current : incoming);
  }
}
