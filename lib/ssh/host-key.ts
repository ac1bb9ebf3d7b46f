import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import ssh2 from "ssh2";

/** An SSH host key: the private key in OpenSSH format, and its public line (`ssh-ed25519 AAAA…`). */
export interface SshHostKey {
  privateKey: string;
  publicKey: string;
}

/**
 * Load an OpenSSH private host key from `file`, creating an Ed25519 one (mode 0600) on first use.
 * Relays keep their own SSH host key apart from their enrollment key: the two have different jobs
 * (one proves the relay to the hub, the other proves the target's stand-in to OpenSSH clients).
 */
export function loadOrCreateSshHostKey(file: string): SshHostKey {
  let privateKey: string;
  try {
    privateKey = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    privateKey = generateHostKey();
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, privateKey, { mode: 0o600, flag: "wx" });
  }
  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`ssh host key ${file}: ${parsed.message}`);
  const key = parsed;
  return { privateKey, publicKey: `${key.type} ${key.getPublicSSH().toString("base64")}` };
}

/**
 * A new Ed25519 private key in OpenSSH format. ssh2's generator strips leading zero bytes from the
 * public key, so about one key in 256 (a public key starting with 0x00) comes out malformed and
 * fails to parse (mscdex/ssh2#1513): such a key is drawn again.
 */
export function generateHostKey(): string {
  for (;;) {
    const { private: key } = ssh2.utils.generateKeyPairSync("ed25519");
    if (!(ssh2.utils.parseKey(key) instanceof Error)) return key;
  }
}
