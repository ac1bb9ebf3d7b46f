import { readJsonFile, writeJsonFile } from "../../../lib/json-file.js";

/** What the hub remembers about a token it issued (never the token itself), and its revocation. */
export interface TokenRecord {
  id: string;
  /** "token": issued through the API or `vigil up`; "session": a web login's cookie (recorded on logout). */
  kind: "token" | "session";
  subject: string;
  groups: string[];
  issuedAt?: string;
  expiresAt: string;
  issuedBy?: string;
  revokedAt?: string;
  revokedBy?: string;
}

/**
 * Issued-token metadata and revocations. `isRevoked` answers from memory: verification never does I/O.
 * Embedded: a file in the data dir. Cluster: a NATS KV bucket every hub watches.
 */
export interface TokenStore {
  record(token: TokenRecord): Promise<void>;
  /** Revoke `id`; a token this store never saw (signed offline, say) is denied until `fallback.expiresAt`. */
  revoke(id: string, by: string, fallback: Omit<TokenRecord, "id">): Promise<TokenRecord>;
  isRevoked(id: string): boolean;
  list(): TokenRecord[];
  close(): Promise<void>;
}

// An entry outlives its token's expiry by the verifiers' clock tolerance, then it is dropped.
const KEEP_AFTER_EXPIRY_MS = 60_000;
const PRUNE_EVERY_MS = 10 * 60_000;

/** The in-memory view both stores share; subclasses persist `put` and `drop`. */
export abstract class MemoryTokenStore implements TokenStore {
  protected readonly records = new Map<string, TokenRecord>();
  private readonly pruner: NodeJS.Timeout;

  constructor() {
    this.pruner = setInterval(() => void this.prune(), PRUNE_EVERY_MS);
    this.pruner.unref();
  }

  protected abstract persist(record: TokenRecord): Promise<void>;
  protected abstract forget(ids: string[]): Promise<void>;

  async record(token: TokenRecord): Promise<void> {
    this.records.set(token.id, token);
    await this.persist(token);
  }

  async revoke(id: string, by: string, fallback: Omit<TokenRecord, "id">): Promise<TokenRecord> {
    const known = this.records.get(id);
    if (known?.revokedAt) return known;
    const revoked: TokenRecord = {
      ...(known ?? { ...fallback, id }),
      revokedAt: new Date().toISOString(),
      revokedBy: by,
    };
    await this.record(revoked);
    return revoked;
  }

  isRevoked(id: string): boolean {
    return this.records.get(id)?.revokedAt !== undefined;
  }

  list(): TokenRecord[] {
    return [...this.records.values()].sort((a, b) => (a.issuedAt ?? "").localeCompare(b.issuedAt ?? ""));
  }

  async close(): Promise<void> {
    clearInterval(this.pruner);
  }

  protected async prune(now = Date.now()): Promise<void> {
    const expired = [...this.records.values()]
      .filter((r) => Date.parse(r.expiresAt) + KEEP_AFTER_EXPIRY_MS < now)
      .map((r) => r.id);
    if (expired.length === 0) return;
    for (const id of expired) this.records.delete(id);
    await this.forget(expired);
  }
}

/** Embedded mode: one JSON file in the data dir, rewritten atomically on every change. */
export class FileTokenStore extends MemoryTokenStore {
  constructor(private readonly file: string) {
    super();
    const stored = readJsonFile<{ tokens?: TokenRecord[] }>(file, "token records");
    for (const r of stored?.tokens ?? []) this.records.set(r.id, r);
    void this.prune();
  }

  protected async persist(): Promise<void> {
    this.save();
  }

  protected async forget(): Promise<void> {
    this.save();
  }

  private save(): void {
    writeJsonFile(this.file, { tokens: [...this.records.values()] });
  }
}
