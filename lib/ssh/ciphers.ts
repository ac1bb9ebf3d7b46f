import { createRequire } from "node:module";
import type { CipherAlgorithm } from "ssh2";

const CHACHA: CipherAlgorithm = "chacha20-poly1305@openssh.com";
const GCM: CipherAlgorithm[] = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"];
const CTR: CipherAlgorithm[] = ["aes128-ctr", "aes256-ctr"];

/**
 * Whether ChaCha20-Poly1305 is the cheaper cipher on this machine. ssh2 orders its defaults by the
 * CPU (cpu-features) and by whether its native binding is built: ChaCha20 first only where the CPU is
 * known to lack AES instructions. Without the binding ssh2's ChaCha20 runs Poly1305 in JavaScript,
 * and AES-GCM is one native pass in Node either way.
 */
function chachaIsFaster(): boolean {
  try {
    const { DEFAULT_CIPHER } = createRequire(import.meta.url)("ssh2/lib/protocol/constants.js") as {
      DEFAULT_CIPHER?: string[];
    };
    return DEFAULT_CIPHER?.[0] === CHACHA;
  } catch {
    return false; // an ssh2 without that module: AES-GCM, fast wherever AES instructions exist
  }
}

const chachaFirst = chachaIsFaster();

/**
 * Ciphers Vigil's SSH servers (the hub's jump host, the relays' engines) offer: ChaCha20-Poly1305,
 * AES-GCM, AES-CTR; no CBC, no arcfour. The client's order decides, and OpenSSH takes ChaCha20
 * whenever it is offered. Offering AES-GCM alone would be cheaper for scp (an OpenSSH client forced
 * to aes128-gcm spent about 1.5-2 ms of CPU per MiB through Vigil instead of 2.4-2.9) but locks out
 * clients without it (paramiko before 3.5); without ChaCha20 on offer, OpenSSH picks AES-CTR with
 * HMAC-SHA2, and SHA-256 took 13-16% of the hub's and the relay's CPU in a profile of that.
 */
export const SSH_SERVER_CIPHERS: CipherAlgorithm[] = [CHACHA, ...GCM, ...CTR];

/**
 * Ciphers the relays use to reach targets, cheapest first: as the client, the relay's order decides.
 * AES-GCM where the CPU has AES instructions costs the relay and the target's sshd less than
 * ChaCha20-Poly1305 (scp through Vigil spends most of its CPU in ciphers and packet handling).
 */
export const SSH_CLIENT_CIPHERS: CipherAlgorithm[] = chachaFirst ? [CHACHA, ...GCM, ...CTR] : [...GCM, CHACHA, ...CTR];
