import { Command } from "commander";
import { VERSION } from "../lib/version.js";
import { accessCommand } from "./commands/access.js";
import { approvalsCommand } from "./commands/approvals.js";
import { connectCommand } from "./commands/connect.js";
import { policyCommand } from "./commands/policy.js";
import { loginCommand } from "./commands/login.js";
import { recordingCommands } from "./commands/recordings.js";
import { serverCommands } from "./commands/servers.js";
import { sshCommands } from "./commands/ssh.js";
import { tokenCommand } from "./commands/token.js";

const program = new Command()
  .name("vigil")
  .description("Vigil: an identity-aware access gateway for AI agents")
  .version(VERSION)
  .showHelpAfterError();

serverCommands(program);
tokenCommand(program);
connectCommand(program);
policyCommand(program);
approvalsCommand(program);
accessCommand(program);
loginCommand(program);
recordingCommands(program);
sshCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as Error & { code?: string };
  process.stderr.write(`vigil: ${e.message}\n`);
  process.exit(1);
}
