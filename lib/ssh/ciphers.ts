import type { CipherAlgorithm } from "ssh2";

/**
 * Ciphers Vigil's SSH servers (the hub's jump host, the relays' engines) offer and the relays use
 * to reach targets: ChaCha20-Poly1305 (OpenSSH's own first choice, native in ssh2's binding), then
 * AES-GCM (one native pass in Node), then AES-CTR for old peers. No CBC, no arcfour. Bulk scp and
 * sftp through Vigil spend most of their CPU here, three encryptions on the way instead of one.
 */
export const SSH_CIPHERS: CipherAlgorithm[] = [
  "chacha20-poly1305@openssh.com",
  "aes128-gcm@openssh.com",
  "aes256-gcm@openssh.com",
  "aes128-ctr",
  "aes256-ctr",
];
