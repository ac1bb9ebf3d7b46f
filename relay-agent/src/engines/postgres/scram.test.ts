import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { VigilError } from "../../../../lib/errors.js";
import { startScram } from "./scram.js";

const PASSWORD = "pencil";
const SALT = randomBytes(16);
const ITERATIONS = 4096;
const CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO";
const SERVER_FIRST = `r=${CLIENT_NONCE}%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=${SALT.toString("base64")},i=${ITERATIONS}`;

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest();

/** The server's side of RFC 5802, from the verifier PostgreSQL stores: StoredKey and ServerKey. */
function serverCheck(clientFirst: string, clientFinal: string): string {
  const salted = pbkdf2Sync(PASSWORD, SALT, ITERATIONS, 32, "sha256");
  const storedKey = sha256(hmac(salted, "Client Key"));
  const serverKey = hmac(salted, "Server Key");
  const [withoutProof, proof] = clientFinal.split(",p=") as [string, string];
  const authMessage = `${clientFirst.slice(3)},${SERVER_FIRST},${withoutProof}`;
  const signature = hmac(storedKey, authMessage);
  const clientKey = Buffer.from(proof, "base64").map((byte, i) => byte ^ signature[i]!);
  assert.deepEqual(sha256(Buffer.from(clientKey)), storedKey, "the proof must reveal a ClientKey matching StoredKey");
  return `v=${hmac(serverKey, authMessage).toString("base64")}`;
}

function assertScramError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof VigilError);
    assert.equal(error.code, "protocol_error");
    assert.match(error.message, message);
    return true;
  });
}

describe("SCRAM-SHA-256 client", () => {
  it("sends no channel binding and an empty user name, as PostgreSQL expects", () => {
    const scram = startScram(PASSWORD, CLIENT_NONCE);
    assert.equal(scram.clientFirstMessage, `n,,n=,r=${CLIENT_NONCE}`);
    assert.match(startScram(PASSWORD).clientFirstMessage, /^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  });

  it("proves the password to a server and accepts the server's proof", async () => {
    const scram = startScram(PASSWORD, CLIENT_NONCE);
    const clientFinal = await scram.respond(SERVER_FIRST);
    assert.match(clientFinal, /^c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj\)hNlF\$k0,p=[A-Za-z0-9+/]+=*$/);
    scram.verify(serverCheck(scram.clientFirstMessage, clientFinal));
  });

  it("rejects a server signature made without the password", async () => {
    const scram = startScram(PASSWORD, CLIENT_NONCE);
    await scram.respond(SERVER_FIRST);
    assertScramError(() => scram.verify(`v=${randomBytes(32).toString("base64")}`), /signature is wrong/);
    assertScramError(() => scram.verify("v=AAAA"), /signature is wrong/);
    assertScramError(() => scram.verify("e=invalid-proof"), /ended the exchange: invalid-proof/);
  });

  it("rejects a server that does not extend the client's nonce", async () => {
    const scram = startScram(PASSWORD, CLIENT_NONCE);
    const replayed = `r=someoneElsesNonce,s=${SALT.toString("base64")},i=4096`;
    await assert.rejects(scram.respond(replayed), /nonce does not extend/);
    await assert.rejects(scram.respond(`r=${CLIENT_NONCE},s=AAAA,i=4096`), /nonce does not extend/);
  });

  it("rejects a malformed server-first-message", async () => {
    const scram = startScram(PASSWORD, CLIENT_NONCE);
    await assert.rejects(scram.respond(`r=${CLIENT_NONCE}x,i=4096`), /no salt/);
    await assert.rejects(scram.respond(`r=${CLIENT_NONCE}x,s=AAAA,i=0`), /iteration count/);
    await assert.rejects(scram.respond(`m=ext,r=${CLIENT_NONCE}x,s=AAAA,i=1`), /unsupported extension/);
  });

  it("refuses to verify before the exchange started", () => {
    assertScramError(() => startScram(PASSWORD).verify("v=AAAA"), /before server-first-message/);
  });
});
