import { EventEmitter } from "node:events";
import { readJsonFile, writeJsonFile } from "../../../lib/json-file.js";
import type { ApprovalRecord } from "./types.js";

/**
 * Where approvals live: in memory for one hub (embedded), in NATS KV when hubs share NATS, so a
 * request raised through one hub can be decided on another. Every implementation keeps a local
 * copy of all records, so reads do no I/O, and emits "change" for every record written anywhere.
 */
export interface ApprovalStore extends EventEmitter<{ change: [ApprovalRecord] }> {
  create(rec: ApprovalRecord): Promise<void>;
  get(id: string): ApprovalRecord | undefined;
  list(): ApprovalRecord[];
  /** Read-modify-write, retried when another hub wrote the record in between. */
  update(id: string, change: (rec: ApprovalRecord) => ApprovalRecord): Promise<ApprovalRecord>;
  close(): Promise<void>;
}

export class MemoryApprovalStore extends EventEmitter<{ change: [ApprovalRecord] }> implements ApprovalStore {
  protected readonly records = new Map<string, ApprovalRecord>();

  async create(rec: ApprovalRecord): Promise<void> {
    if (this.records.has(rec.id)) throw new Error(`approval ${rec.id} exists`);
    this.set(rec);
  }

  get(id: string): ApprovalRecord | undefined {
    return this.records.get(id);
  }

  list(): ApprovalRecord[] {
    return [...this.records.values()];
  }

  async update(id: string, change: (rec: ApprovalRecord) => ApprovalRecord): Promise<ApprovalRecord> {
    const current = this.records.get(id);
    if (!current) throw new Error(`no approval ${id}`);
    const next = change(structuredClone(current));
    this.set(next);
    return next;
  }

  async close(): Promise<void> {}

  protected set(rec: ApprovalRecord): void {
    this.records.set(rec.id, rec);
    this.emit("change", rec);
  }
}

/** Embedded mode: the in-memory store, written through to a JSON file so a restart keeps requests and grants. */
export class FileApprovalStore extends MemoryApprovalStore {
  constructor(private readonly file: string) {
    super();
    const stored = readJsonFile<ApprovalRecord[]>(file, "approvals") ?? [];
    // Like the NATS bucket's TTL: records a day past every deadline are history, not state.
    const horizon = Date.now() - 24 * 3600 * 1000;
    for (const rec of stored) {
      const last = Math.max(Date.parse(rec.expiresAt), Date.parse(rec.grantExpiresAt ?? rec.expiresAt));
      if (last >= horizon) this.records.set(rec.id, rec);
    }
  }

  protected override set(rec: ApprovalRecord): void {
    super.set(rec);
    writeJsonFile(this.file, [...this.records.values()]);
  }
}
