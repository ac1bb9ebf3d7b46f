import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import type { SshKeyRecord, SshKeyStore } from "./store.js";

const BUCKET = "vigil_ssh_keys";

/** Registered keys in a NATS KV bucket shared by every hub; a watch keeps the local copy current. */
export class NatsSshKeyStore implements SshKeyStore {
  private readonly records = new Map<string, SshKeyRecord>();
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  static async open(nc: NatsConnection, log: Logger): Promise<NatsSshKeyStore> {
    const kv = await new Kvm(nc).create(BUCKET, { history: 1 });
    const store = new NatsSshKeyStore(kv, log);
    await store.startWatch();
    return store;
  }

  /** Replay every record, then follow changes from all hubs; resolves once the replay is done. */
  private async startWatch(): Promise<void> {
    let replayed!: () => void;
    const initial = new Promise<void>((r) => (replayed = r));
    const watch = await this.kv.watch();
    this.stopWatch = () => watch.stop();
    if ((await this.kv.status()).values === 0) replayed();
    void (async () => {
      for await (const entry of watch) {
        this.apply(entry);
        if (entry.delta === 0) replayed();
      }
    })().catch((err: unknown) => this.log.error({ err }, "ssh keys watch ended"));
    await initial;
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT") {
      this.records.delete(entry.key);
      return;
    }
    try {
      const rec = JSON.parse(new TextDecoder().decode(entry.value)) as SshKeyRecord;
      this.records.set(rec.id, rec);
    } catch (err) {
      this.log.error({ key: entry.key, err: (err as Error).message }, "unreadable ssh key record");
    }
  }

  async add(rec: SshKeyRecord): Promise<void> {
    try {
      await this.kv.create(rec.id, JSON.stringify(rec));
    } catch {
      throw new VigilError("conflict", `key ${rec.fingerprint} is already registered`);
    }
    this.records.set(rec.id, rec); // the watch brings it too; a login right after must see it here
  }

  get(id: string): SshKeyRecord | undefined {
    return this.records.get(id);
  }

  list(): SshKeyRecord[] {
    return [...this.records.values()];
  }

  async remove(id: string): Promise<void> {
    if (!this.records.has(id)) throw new VigilError("not_found", `no registered key ${id}`);
    await this.kv.delete(id);
    this.records.delete(id);
  }

  async close(): Promise<void> {
    this.stopWatch?.();
  }
}
