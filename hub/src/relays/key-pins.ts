import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { readJsonFile, writeJsonFile } from "../../../lib/json-file.js";

/**
 * Trust on first enrollment: the first key a relay_id enrolls with is pinned, and every later
 * Hello for that relay_id must prove possession of the same key.
 */
export interface KeyPinStore {
  /** Pin `publicKey` for `relayId` unless a pin exists; return the pinned key either way. */
  pinOrGet(relayId: string, publicKey: Buffer): Promise<Buffer>;
  list(): Promise<Map<string, Buffer>>;
}

/** Embedded mode: a JSON file in the data dir, rewritten atomically. */
export class FileKeyPinStore implements KeyPinStore {
  private readonly pins: Map<string, Buffer>;

  constructor(private readonly file: string) {
    this.pins = new Map();
    const stored = readJsonFile<Record<string, string>>(file, "relay pins") ?? {};
    for (const [id, key] of Object.entries(stored)) this.pins.set(id, Buffer.from(key, "base64"));
  }

  async pinOrGet(relayId: string, publicKey: Buffer): Promise<Buffer> {
    const pinned = this.pins.get(relayId);
    if (pinned) return pinned;
    this.pins.set(relayId, publicKey);
    this.save();
    return publicKey;
  }

  async list(): Promise<Map<string, Buffer>> {
    return new Map(this.pins);
  }

  private save(): void {
    const out: Record<string, string> = {};
    for (const [id, key] of this.pins) out[id] = key.toString("base64");
    writeJsonFile(this.file, out);
  }
}

/** Cluster mode: a NATS KV bucket shared by every hub; `create` makes the first pin atomic. */
export class NatsKeyPinStore implements KeyPinStore {
  private constructor(private readonly kv: KV) {}

  static async open(nc: NatsConnection): Promise<NatsKeyPinStore> {
    return new NatsKeyPinStore(await new Kvm(nc).create("vigil_relay_keys", { history: 1 }));
  }

  async pinOrGet(relayId: string, publicKey: Buffer): Promise<Buffer> {
    const key = kvKey(relayId);
    try {
      await this.kv.create(key, publicKey);
      return publicKey;
    } catch (err) {
      const entry = await this.kv.get(key);
      if (entry && entry.operation === "PUT") return Buffer.from(entry.value);
      throw err;
    }
  }

  async list(): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key);
      if (entry?.operation === "PUT") out.set(Buffer.from(key, "base64url").toString(), Buffer.from(entry.value));
    }
    return out;
  }
}

// KV keys allow a limited alphabet; relay ids are free-form, so encode them.
const kvKey = (relayId: string) => Buffer.from(relayId).toString("base64url");
