/**
 * Answers a target's authentication requests with the relay's credentials: trust, cleartext
 * password, MD5 and SCRAM-SHA-256. Kerberos, GSSAPI, SSPI and SCM credentials are refused clearly.
 */
import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { serialize } from "pg-protocol";
import { isLoopback } from "../../../../lib/address.js";
import { VigilError } from "../../../../lib/errors.js";
import type { PostgresCredentials } from "./credentials.js";
import { SCRAM_SHA_256, startScram, type ScramExchange } from "./scram.js";
import { protocolError, type LoginMessage } from "./target-wire.js";

export type AuthRequest = Extract<LoginMessage, { kind: `auth${string}` }>;

/**
 * SQLSTATE for logins the relay cannot complete with its own credentials: "the server rejected
 * establishment of the connection". Neither 28P01 nor 28000: those tell a client its password is wrong,
 * and a Vigil client sent none.
 */
export const RELAY_LOGIN_REJECTED = "08004";

export interface AuthTarget {
  stream: Duplex;
  credentials: PostgresCredentials;
  host: string;
  tls: boolean;
}

/** One login's authentication state; `answer` each request until `done`. */
export class TargetAuthenticator {
  private scram: ScramExchange | undefined;
  private scramVerified = false;
  private finished = false;

  constructor(private readonly target: AuthTarget) {}

  get done(): boolean {
    return this.finished;
  }

  async answer(request: AuthRequest): Promise<void> {
    if (this.finished) throw protocolError("authentication request after AuthenticationOk");
    switch (request.kind) {
      case "authOk":
        // A server that started SCRAM must prove it knows the password before we trust it.
        if (this.scram && !this.scramVerified) throw protocolError("AuthenticationOk before SCRAM completed");
        this.finished = true;
        return;
      case "authCleartext":
        this.send(serialize.password(this.cleartextPassword()));
        return;
      case "authMd5":
        this.send(serialize.password(md5Password(this.target.credentials.user, this.password(), request.salt)));
        return;
      case "authSasl":
        return this.startSasl(request.mechanisms);
      case "authSaslContinue":
        if (!this.scram || this.scramVerified) throw protocolError("unexpected SASL continuation");
        this.send(serialize.sendSCRAMClientFinalMessage(await this.scram.respond(request.data)));
        return;
      case "authSaslFinal":
        if (!this.scram || this.scramVerified) throw protocolError("unexpected SASL final message");
        this.scram.verify(request.data);
        this.scramVerified = true;
        return;
      case "authUnsupported":
        throw refused(`the target asks for ${request.method} authentication, which the relay does not support`);
    }
  }

  private startSasl(mechanisms: string[]): void {
    if (this.scram) throw protocolError("second SASL exchange");
    // The server may offer SCRAM-SHA-256-PLUS first; we never bind channels, so take the plain one.
    if (!mechanisms.includes(SCRAM_SHA_256)) {
      throw refused(`the target offers SASL ${mechanisms.join(", ")}; the relay supports only ${SCRAM_SHA_256}`);
    }
    this.scram = startScram(this.password());
    this.send(serialize.sendSASLInitialResponseMessage(SCRAM_SHA_256, this.scram.clientFirstMessage));
  }

  /**
   * libpq sends a cleartext password wherever it is asked. The relay sends it only over TLS or to a
   * loopback address, so that nobody on the network path reads it; over an unverified TLS
   * (prefer/require) an active impostor still could, which verify-ca/verify-full prevent.
   */
  private cleartextPassword(): string {
    if (!this.target.tls && !isLoopback(this.target.host)) {
      throw refused(
        "the target asks for the password in cleartext over an unencrypted connection; the relay does not send it " +
          "(set sslmode to require or stronger, or use scram-sha-256 on the target)",
      );
    }
    return this.password();
  }

  private password(): string {
    const { password } = this.target.credentials;
    if (password === undefined)
      throw refused("the target asks for a password, but the relay has none for this connection");
    return password;
  }

  private send(message: Buffer): void {
    this.target.stream.write(message);
  }
}

/** "md5" + md5(md5(password + user) + salt), as PostgreSQL's md5 method expects. */
function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash("md5")
    .update(password + user, "utf8")
    .digest("hex");
  return `md5${createHash("md5").update(inner, "utf8").update(salt).digest("hex")}`;
}

function refused(message: string): VigilError {
  return new VigilError("target_refused", message, { nativeCode: RELAY_LOGIN_REJECTED });
}
