import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/** An Ed25519 key pair, as relays use for enrollment and the hub for local tokens. */
export interface Ed25519Key {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Raw 32-byte public key, as sent on the wire. */
  publicRaw: Buffer;
}

/** Load a PKCS#8 PEM key from `file`, creating it (mode 0600) on first use. */
export function loadOrCreateKey(file: string): Ed25519Key {
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const { privateKey } = generateKeyPairSync("ed25519");
    pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, pem, { mode: 0o600, flag: "wx" });
  }
  return fromPrivateKey(createPrivateKey(pem));
}

export function generateKey(): Ed25519Key {
  return fromPrivateKey(generateKeyPairSync("ed25519").privateKey);
}

function fromPrivateKey(privateKey: KeyObject): Ed25519Key {
  if (privateKey.asymmetricKeyType !== "ed25519") throw new Error("key is not Ed25519");
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, publicRaw: rawPublicKey(publicKey) };
}

// An Ed25519 SPKI DER is a fixed 12-byte header followed by the 32-byte key.
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ type: "spki", format: "der" }).subarray(SPKI_PREFIX.length);
}

export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error(`Ed25519 public key must be 32 bytes, got ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

export function signEd25519(key: KeyObject, data: Uint8Array): Buffer {
  return sign(null, data, key);
}

export function verifyEd25519(publicRaw: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, publicKeyFromRaw(publicRaw), signature);
  } catch {
    return false;
  }
}

/** What a relay signs in its Hello: binds the hub's nonce, the relay's id and its key together. */
export function helloSigningPayload(nonce: Uint8Array, relayId: string, publicRaw: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from("vigil-hello-v1\0"), nonce, Buffer.from(`\0${relayId}\0`), publicRaw]);
}

/** What a relay signs to attach a Tunnel stream to a session the hub asked it to open. */
export function tunnelSigningPayload(sessionId: string, relayId: string): Buffer {
  return Buffer.from(`vigil-tunnel-v1\0${sessionId}\0${relayId}`);
}
