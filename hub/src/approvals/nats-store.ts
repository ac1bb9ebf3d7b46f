import { EventEmitter } from "node:events";
import { Kvm, type KV, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../../../lib/log.js";
import { followBucket, recordOf } from "../kv-follow.js";
import type { ApprovalStore } from "./store.js";
import type { ApprovalRecord } from "./types.js";

const BUCKET = "vigil_approvals";
// Decided requests stay visible for a day: enough for an investigator, bounded for the bucket.
const MAX_AGE_MS = 24 * 3600 * 1000;

/** Approvals in a NATS KV bucket shared by every hub; a watch keeps the local copy current. */
export class NatsApprovalStore extends EventEmitter<{ change: [ApprovalRecord] }> implements ApprovalStore {
  private readonly records = new Map<string, ApprovalRecord>();
  private stopWatch: (() => void) | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {
    super();
  }

  static async open(nc: NatsConnection, log: Logger): Promise<NatsApprovalStore> {
    const kv = await new Kvm(nc).create(BUCKET, { history: 1, ttl: MAX_AGE_MS });
    const store = new NatsApprovalStore(kv, log);
    store.stopWatch = await followBucket(kv, "approvals", log, (entry) => store.apply(entry));
    return store;
  }

  private apply(entry: KvWatchEntry): void {
    if (entry.operation !== "PUT") {
      this.records.delete(entry.key);
      return;
    }
    const rec = recordOf<ApprovalRecord>(entry, "approval", this.log);
    if (!rec) return;
    this.records.set(rec.id, rec);
    this.emit("change", rec);
  }

  async create(rec: ApprovalRecord): Promise<void> {
    await this.kv.create(rec.id, JSON.stringify(rec));
    await this.waitFor(rec.id, (r) => r === undefined);
  }

  get(id: string): ApprovalRecord | undefined {
    return this.records.get(id);
  }

  list(): ApprovalRecord[] {
    return [...this.records.values()];
  }

  async update(id: string, change: (rec: ApprovalRecord) => ApprovalRecord): Promise<ApprovalRecord> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const entry = await this.kv.get(id);
      if (!entry || entry.operation !== "PUT") throw new Error(`no approval ${id}`);
      const next = change(JSON.parse(entry.string()) as ApprovalRecord);
      try {
        await this.kv.update(id, JSON.stringify(next), entry.revision);
        const written = JSON.stringify(next);
        await this.waitFor(id, (r) => r === undefined || JSON.stringify(r) !== written);
        return next;
      } catch (err) {
        if (attempt === 9) throw err; // another hub kept winning the race
      }
    }
    throw new Error("unreachable");
  }

  /** Wait until the watch has delivered our own write, so a read right after a write sees it. */
  private async waitFor(id: string, stale: (r: ApprovalRecord | undefined) => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (stale(this.records.get(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  async close(): Promise<void> {
    this.stopWatch?.();
  }
}
