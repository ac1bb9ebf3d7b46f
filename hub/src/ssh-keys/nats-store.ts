import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { VigilError } from "../../../lib/errors.js";
import type { Logger } from "../../../lib/log.js";
import { followBucket, recordOf } from "../kv-follow.js";
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
    store.stopWatch = await followBucket(kv, "ssh keys", log, (entry) => store.apply(entry));
    return store;
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT") {
      this.records.delete(entry.key);
      return;
    }
    const rec = recordOf<SshKeyRecord>(entry, "ssh key", this.log);
    if (rec) this.records.set(rec.id, rec);
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
