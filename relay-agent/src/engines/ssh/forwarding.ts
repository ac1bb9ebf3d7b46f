import type { Duplex } from "node:stream";
import type { Client as SshClient, ClientChannel, Connection, ServerChannel } from "ssh2";
import type { SshForwardCommand } from "../../../../lib/policy/command.js";
import type { SessionContext } from "../engine.js";
import type { CommandJudge } from "./judge.js";

/**
 * Port forwarding through the relay, by policy: `ssh -L` (a direct-tcpip channel: the relay asks the
 * target to connect onward) and `ssh -R` (a tcpip-forward request: the target listens, and each
 * connection it accepts comes back to the client). Each is judged as an `ssh-forward` command and
 * refused unless an `allow` rule says yes; allowed ones are recorded with their decision.
 */
export class Forwarding {
  /** Remote forwards the target listens on for this client, as "addr:port". */
  private readonly listening = new Set<string>();

  constructor(
    private readonly ctx: SessionContext,
    private readonly conn: Connection,
    private readonly target: SshClient,
    private readonly judge: CommandJudge,
  ) {
    conn.on("tcpip", (accept, reject, info) => {
      void this.allowed("local", info.destIP, info.destPort).then((ok) => {
        if (!ok) return reject();
        target.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, remote) => {
          if (err) return reject();
          splice(accept(), remote);
        });
      });
    });
    conn.on("request", (accept, reject, name, info) => {
      const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number };
      if (name === "cancel-tcpip-forward") {
        this.listening.delete(`${bindAddr}:${bindPort}`);
        return target.unforwardIn(bindAddr, bindPort, () => accept?.());
      }
      if (name !== "tcpip-forward") {
        ctx.log.info({ request: name }, "global request refused");
        return reject?.();
      }
      void this.allowed("remote", bindAddr, bindPort).then((ok) => {
        if (!ok) return reject?.();
        target.forwardIn(bindAddr, bindPort, (err, port) => {
          if (err) return reject?.();
          this.listening.add(`${bindAddr}:${port}`);
          (accept as ((port?: number) => void) | undefined)?.(port);
        });
      });
    });
    // The target hands back connections to forwards it listens on for this client.
    target.on("tcp connection", (details, accept, reject) => {
      if (!this.listening.has(`${details.destIP}:${details.destPort}`)) return reject();
      conn.forwardOut(details.destIP, details.destPort, details.srcIP, details.srcPort, (err, local) => {
        if (err) return reject();
        splice(local, accept());
      });
    });
  }

  /** Judged like a command: only an `allow` rule that matched lets a forward through. */
  private async allowed(direction: "local" | "remote", host: string, port: number): Promise<boolean> {
    const text = `forward ${direction} ${host}:${port}`;
    const command: SshForwardCommand = { protocol: "ssh-forward", direction, host, port, text };
    const verdict = await this.judge.judge("forward", command, [`forward-${direction}`], () => {}, {
      needsAllowRule: true,
    });
    if (!verdict.run) this.ctx.log.info({ forward: text, reason: verdict.message }, "port forwarding refused");
    return verdict.run;
  }
}

function splice(a: ServerChannel | ClientChannel | Duplex, b: ServerChannel | ClientChannel | Duplex): void {
  a.pipe(b).on("error", () => a.destroy());
  b.pipe(a).on("error", () => b.destroy());
  a.on("close", () => b.destroy());
  b.on("close", () => a.destroy());
}
