import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import ssh2 from "ssh2";
import { VigilError } from "../../../lib/errors.js";
import { readJsonFile, writeJsonFile } from "../../../lib/json-file.js";

/**
 * A public key registered to an identity: presenting it at the SSH jump host logs in as that
 * identity, with the groups it had when the key was registered, until the key expires. The expiry
 * bounds how long a registration outlives a change of the identity's groups.
 */
export interface SshKeyRecord {
  /** Hex SHA-256 of the key blob: the key's id in the API and the store. */
  id: string;
  /** As OpenSSH prints it: SHA256:<base64>. */
  fingerprint: string;
  /** `ssh-ed25519 AAAA…` (no comment). */
  publicKey: string;
  name: string;
  subject: string;
  groups: string[];
  issuer: string;
  addedAt: string;
  addedBy: string;
  /** ISO time after which the jump host refuses the key. Absent on keys registered before keys expired. */
  expiresAt?: string;
}

/** Whether a registered key may still log in at `now`. */
export function keyExpired(rec: SshKeyRecord, now = Date.now()): boolean {
  return rec.expiresAt !== undefined && Date.parse(rec.expiresAt) <= now;
}

/**
 * Where registered keys live: a JSON file in the data dir (embedded), NATS KV when hubs share NATS.
 * Every implementation keeps a local copy of all records, so a login looks a key up without I/O.
 */
export interface SshKeyStore {
  add(rec: SshKeyRecord): Promise<void>;
  get(id: string): SshKeyRecord | undefined;
  list(): SshKeyRecord[];
  remove(id: string): Promise<void>;
  close(): Promise<void>;
}

/** Parse an OpenSSH public key line; throws a bad_request VigilError when it is not one. */
export function parsePublicKey(line: string): { blob: Buffer; publicKey: string; id: string; fingerprint: string } {
  const parsed = ssh2.utils.parseKey(line.trim());
  if (parsed instanceof Error || parsed.isPrivateKey()) {
    throw new VigilError("bad_request", "publicKey is not an OpenSSH public key line (ssh-ed25519 AAAA…)");
  }
  const blob = parsed.getPublicSSH();
  return { blob, publicKey: `${parsed.type} ${blob.toString("base64")}`, ...keyId(blob) };
}

/** The id and OpenSSH fingerprint of a public key blob. */
export function keyId(blob: Buffer): { id: string; fingerprint: string } {
  const digest = createHash("sha256").update(blob).digest();
  return { id: digest.toString("hex"), fingerprint: `SHA256:${digest.toString("base64").replace(/=+$/, "")}` };
}

export class MemorySshKeyStore extends EventEmitter implements SshKeyStore {
  protected readonly records = new Map<string, SshKeyRecord>();

  async add(rec: SshKeyRecord): Promise<void> {
    if (this.records.has(rec.id)) throw new VigilError("conflict", `key ${rec.fingerprint} is already registered`);
    this.records.set(rec.id, rec);
    this.saved();
  }

  get(id: string): SshKeyRecord | undefined {
    return this.records.get(id);
  }

  list(): SshKeyRecord[] {
    return [...this.records.values()];
  }

  async remove(id: string): Promise<void> {
    if (!this.records.delete(id)) throw new VigilError("not_found", `no registered key ${id}`);
    this.saved();
  }

  async close(): Promise<void> {}

  protected saved(): void {}
}

/** Embedded mode: the in-memory store written through to `<data>/ssh-keys.json`. */
export class FileSshKeyStore extends MemorySshKeyStore {
  constructor(private readonly file: string) {
    super();
    for (const rec of readJsonFile<SshKeyRecord[]>(file, "ssh keys") ?? []) this.records.set(rec.id, rec);
  }

  protected override saved(): void {
    writeJsonFile(this.file, [...this.records.values()]);
  }
}
