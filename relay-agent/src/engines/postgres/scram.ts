/**
 * SCRAM-SHA-256 client (RFC 5802, RFC 7677) the way PostgreSQL speaks it:
 * - no channel binding: the GS2 header is "n,,", also when the server offers SCRAM-SHA-256-PLUS
 *   next to it ("n" tells the server we cannot bind, so it is not a downgrade);
 * - the user name in client-first is empty: the server takes the user from the startup message;
 * - the password is used as its UTF-8 bytes, without SASLprep. That is exact for ASCII passwords and
 *   for any password SASLprep leaves unchanged; libpq and the server skip SASLprep too when it fails.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { VigilError } from "../../../../lib/errors.js";

export const SCRAM_SHA_256 = "SCRAM-SHA-256";

/** base64("n,,"): the channel-binding attribute for "no channel binding". */
const GS2_HEADER_B64 = "biws";
const NONCE_BYTES = 18;
const KEY_BYTES = 32;

// Async so that key stretching runs on the thread pool, not on the relay's event loop.
const hi = promisify(pbkdf2);

export interface ScramExchange {
  /** The client-first-message, sent in SASLInitialResponse. */
  readonly clientFirstMessage: string;
  /** Answers the server-first-message with the client-final-message (carrying the proof). */
  respond(serverFirstMessage: string): Promise<string>;
  /** Throws unless the server-final-message proves the server knows the password too. */
  verify(serverFinalMessage: string): void;
}

/** Starts an exchange for `password`; tests pass a fixed `clientNonce`. */
export function startScram(password: string, clientNonce = randomBytes(NONCE_BYTES).toString("base64")): ScramExchange {
  const clientFirstBare = `n=,r=${clientNonce}`;
  let expectedServerSignature: Buffer | undefined;
  return {
    clientFirstMessage: `n,,${clientFirstBare}`,
    async respond(serverFirstMessage) {
      const { nonce, salt, iterations } = parseServerFirst(serverFirstMessage, clientNonce);
      const saltedPassword = await hi(Buffer.from(password, "utf8"), salt, iterations, KEY_BYTES, "sha256");
      const clientFinalWithoutProof = `c=${GS2_HEADER_B64},r=${nonce}`;
      const authMessage = `${clientFirstBare},${serverFirstMessage},${clientFinalWithoutProof}`;
      const clientKey = hmac(saltedPassword, "Client Key");
      const storedKey = createHash("sha256").update(clientKey).digest();
      const clientSignature = hmac(storedKey, authMessage);
      const proof = Buffer.alloc(KEY_BYTES);
      for (let i = 0; i < KEY_BYTES; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
      expectedServerSignature = hmac(hmac(saltedPassword, "Server Key"), authMessage);
      return `${clientFinalWithoutProof},p=${proof.toString("base64")}`;
    },
    verify(serverFinalMessage) {
      if (!expectedServerSignature) throw scramError("server-final-message arrived before server-first-message");
      const attrs = attributes(serverFinalMessage);
      const error = attrs.get("e");
      if (error !== undefined) throw scramError(`the server ended the exchange: ${error}`);
      const signature = Buffer.from(attrs.get("v") ?? "", "base64");
      if (signature.length !== KEY_BYTES || !timingSafeEqual(signature, expectedServerSignature)) {
        throw scramError("the server's signature is wrong: it does not know the password");
      }
    },
  };
}

function parseServerFirst(message: string, clientNonce: string): { nonce: string; salt: Buffer; iterations: number } {
  if (message.startsWith("m=")) throw scramError("the server demands an unsupported extension");
  const attrs = attributes(message);
  const nonce = attrs.get("r") ?? "";
  // The server must extend our nonce, or it could replay an old exchange.
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    throw scramError("the server's nonce does not extend the client's");
  }
  const salt = Buffer.from(attrs.get("s") ?? "", "base64");
  if (salt.length === 0) throw scramError("server-first-message has no salt");
  const iterations = Number(attrs.get("i"));
  if (!Number.isSafeInteger(iterations) || iterations < 1)
    throw scramError("server-first-message has a bad iteration count");
  return { nonce, salt, iterations };
}

/** "a=1,b=2" → {a: "1", b: "2"}; values may contain "=" (base64 padding). */
function attributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(",")) {
    if (part[1] === "=") attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function scramError(detail: string): VigilError {
  return new VigilError("protocol_error", `SCRAM authentication with the target failed: ${detail}`);
}
