import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import ssh2 from "ssh2";
import type { Client as SshClient, Connection } from "ssh2";
import type { SessionContext } from "../engine.js";
import { SessionChannel } from "./channel.js";
import { Forwarding } from "./forwarding.js";
import { CommandJudge } from "./judge.js";
import { SSH_SERVER_CIPHERS } from "../../../../lib/ssh/ciphers.js";

const { Server } = ssh2;

/**
 * One client SSH connection, terminated at the relay: the tunnel carries the client's inner SSH
 * connection (opened through the hub's jump host), and this side is its server, with the relay's
 * host key. The login is accepted as it comes: the hub already authenticated the caller and checked
 * the connect grant. Session channels go to SessionChannel, port forwards to Forwarding (by policy);
 * everything else is refused.
 */
export class SshSession {
  private readonly judge: CommandJudge;
  private loginUser: string | undefined;

  constructor(
    private readonly ctx: SessionContext,
    private readonly target: SshClient,
    private readonly hostKey: string,
  ) {
    this.judge = new CommandJudge(ctx);
  }

  serve(tunnel: Duplex): Promise<void> {
    return new Promise<void>((resolve) => {
      const server = new Server({
        hostKeys: [this.hostKey],
        algorithms: { cipher: SSH_SERVER_CIPHERS },
        ident: "Vigil",
      });
      server.on("connection", (conn: Connection) => {
        conn.on("authentication", (auth) => {
          if (this.loginUser === undefined) {
            this.loginUser = auth.username;
            this.learned({ login_user: auth.username });
          }
          auth.accept();
        });
        conn.on("session", (accept) => {
          new SessionChannel(accept(), {
            ctx: this.ctx,
            target: this.target,
            judge: this.judge,
            learned: (p) => this.learned(p),
          });
        });
        new Forwarding(this.ctx, conn, this.target, this.judge);
        conn.on("error", (err) => this.ctx.log.info({ err: err.message }, "client ssh connection error"));
        conn.on("close", () => {
          this.target.end();
          resolve();
        });
        this.target.on("close", () => conn.end());
      });
      server.injectSocket(tunnel as Socket);
    });
  }

  /** Parameters the engine learns after the start (login user, terminal): one SessionParams event each time. */
  private learned(params: Record<string, string>): void {
    this.ctx.recording.record({
      $case: "params",
      value: { params: Object.entries(params).map(([key, value]) => ({ key, value })) },
    });
  }
}
