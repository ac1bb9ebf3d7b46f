import type { Connection } from "../../../../lib/config/schema.js";
import { VigilError } from "../../../../lib/errors.js";
import type { EngineSession, ProtocolEngine, SessionContext } from "../engine.js";
import { sshCredentials } from "./credentials.js";
import { SshSession } from "./session.js";
import { connectTarget } from "./target.js";

/**
 * `ssh`: the relay logs in to the target with its own credentials, then serves the client's SSH
 * connection itself (its own host key), judging every exec, interactive line and sftp operation
 * before the target sees it, and recording the terminal.
 */
export const sshEngine: ProtocolEngine = {
  check(connection: Connection): void {
    sshCredentials(connection);
  },

  async open(ctx: SessionContext): Promise<EngineSession> {
    if (!ctx.sshHostKey) throw new VigilError("internal", "the relay has no SSH host key");
    const target = await connectTarget(ctx.connection.target, sshCredentials(ctx.connection));
    const session = new SshSession(ctx, target, ctx.sshHostKey);
    return { serve: (client) => session.serve(client) };
  },
};
