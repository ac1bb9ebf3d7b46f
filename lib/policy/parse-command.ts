import { analyzeHttp } from "../analyze/http.js";
import { analyzeShell } from "../analyze/shell.js";
import { analyzeSql, loadSqlParser } from "../analyze/sql.js";
import { VigilError } from "../errors.js";
import type { Command } from "./command.js";

/**
 * Parse a command as the relay's engine for `type` would: SQL for postgres, a shell line for ssh,
 * "METHOD /path?query" for http and kubernetes. Used by `vigil policy test` so that its answer is
 * the relay's answer.
 */
export async function parseCommand(type: string, text: string): Promise<Command> {
  switch (type) {
    case "postgres":
      await loadSqlParser();
      return analyzeSql(text);
    case "ssh":
      return analyzeShell(text);
    case "http":
    case "kubernetes": {
      const m = /^([A-Za-z]+)\s+(\S+)$/.exec(text.trim());
      if (!m) throw new VigilError("bad_request", 'an HTTP command is "METHOD /path", e.g. "DELETE /api/v1/nodes/n1"');
      return analyzeHttp(m[1]!.toUpperCase(), m[2]!);
    }
    default:
      throw new VigilError("bad_request", `${type} connections carry bytes, not commands: only connect grants apply`);
  }
}
