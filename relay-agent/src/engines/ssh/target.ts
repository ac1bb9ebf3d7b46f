import { connect } from "node:net";
import ssh2 from "ssh2";
import type { Client as SshClient, ClientChannel, ParsedKey } from "ssh2";
import { parseHostPort } from "../../../../lib/address.js";
import { VigilError } from "../../../../lib/errors.js";
import { batchWritesPerTick } from "../../../../lib/ssh/batch-writes.js";
import { SSH_CLIENT_CIPHERS } from "../../../../lib/ssh/ciphers.js";
import type { SshCredentials } from "./credentials.js";

const { Client } = ssh2;

const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Log in to the target with the relay's own credentials. A refused login or an unknown host key is
 * `target_refused`, an unreachable address `target_unreachable`; messages never carry the secret.
 */
export function connectTarget(address: string, creds: SshCredentials): Promise<SshClient> {
  const { host, port } = parseHostPort(address);
  const pinned = creds.hostKey ? parseKey(creds.hostKey) : undefined;
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyMismatch = false;
    client.once("ready", () => {
      client.setNoDelay(true); // interactive echo must not wait for Nagle
      client.removeAllListeners("error");
      client.on("error", () => {}); // later errors end the session through the channels' close
      resolve(client);
    });
    client.once("error", (err: Error & { level?: string }) => {
      if (hostKeyMismatch) {
        reject(
          new VigilError("target_refused", `the target ${address} presented a host key other than credentials.hostKey`),
        );
      } else if (err.level === "client-authentication") {
        reject(new VigilError("target_refused", `the target ${address} refused the relay's login as ${creds.user}`));
      } else {
        reject(new VigilError("target_unreachable", `cannot reach ${address}: ${err.message}`, { cause: err }));
      }
    });
    client.connect({
      // Our own socket, so that the packets of one tick leave in one write.
      sock: batchWritesPerTick(connect({ host, port })),
      username: creds.user,
      ...(creds.privateKey ? { privateKey: creds.privateKey } : { password: creds.password }),
      readyTimeout: CONNECT_TIMEOUT_MS,
      keepaliveInterval: 15_000,
      algorithms: { cipher: SSH_CLIENT_CIPHERS },
      hostVerifier: (key: Buffer) => {
        if (!pinned) return true;
        hostKeyMismatch = !pinned.getPublicSSH().equals(key);
        return !hostKeyMismatch;
      },
    });
  });
}

function parseKey(line: string): ParsedKey {
  const parsed = ssh2.utils.parseKey(line);
  if (parsed instanceof Error) throw new VigilError("target_refused", `credentials.hostKey: ${parsed.message}`);
  return parsed;
}

export type { ClientChannel };
