import type { SshEnvCommand } from "../../../../lib/policy/command.js";
import type { CommandJudge } from "./judge.js";

/** Rule id for variables Vigil never passes, whatever the policy says. */
export const ENV_RUNS_CODE_RULE = "vigil/env-runs-code";

/**
 * Names the target's shell, dynamic loader or interpreters turn into code, or into a choice of which
 * program runs, that no command check sees: `BASH_ENV` names a script bash runs before any command,
 * `LD_PRELOAD` a library loaded into every program, `PATH` which `ls` is run, `PROMPT_COMMAND` and
 * the prompts run commands at every prompt, `HOME` and `ZDOTDIR` choose the startup files.
 */
const RUNS_CODE =
  /^(LD_\w*|DYLD_\w*|BASH_ENV|ENV|BASH_FUNC_.*|PROMPT_COMMAND|PS[0-4]|SHELLOPTS|BASHOPTS|IFS|PATH|HOME|SHELL|ZDOTDIR|INPUTRC|PERL5OPT|PERL5LIB|PYTHONSTARTUP|PYTHONPATH|PYTHONHOME|NODE_OPTIONS|RUBYOPT)$/;

/**
 * The locale and colour hints: OpenSSH's packaged configs send them by default (`SendEnv LANG LC_*
 * COLORTERM NO_COLOR`); they change how text looks, not what runs.
 */
const PRESENTATION = /^(LANG|LANGUAGE|LC_\w+|COLORTERM|NO_COLOR)$/;

/**
 * The environment variables a client asks for on one session channel (`ssh -o SetEnv`, `SendEnv`).
 * Each is judged as an `env NAME=value` command: the locale and colour hints pass unless a rule denies them, other
 * names need an `allow` rule with `ssh: { env: [...] }`, and names in RUNS_CODE are refused whatever
 * the policy says. The target's sshd then applies its own AcceptEnv to what passed.
 */
export class ClientEnvironment {
  private readonly allowed: Record<string, string> = {};
  private readonly refused: string[] = [];
  private pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly judge: CommandJudge) {}

  /** Judge one variable; resolves true when it may go to the target. */
  request(name: string, value: string): Promise<boolean> {
    const command: SshEnvCommand = { protocol: "ssh-env", name, text: `env ${name}=${value}` };
    const verdict = this.judge.judge("env", command, ["env"], () => {}, {
      needsAllowRule: !PRESENTATION.test(name),
      ...(RUNS_CODE.test(name)
        ? { refuse: { rule: ENV_RUNS_CODE_RULE, reason: "it would make the target run code no policy sees" } }
        : {}),
    });
    const refuse = (why: string) => {
      this.refused.push(`vigil: environment variable ${name} not set: ${why}`);
      return false;
    };
    const ok = verdict.then(
      (v) => {
        if (!v.run) return refuse(v.message);
        this.allowed[name] = value;
        return true;
      },
      (err: Error) => refuse(err.message), // fails closed, and never leaves a rejection unhandled
    );
    this.pending = Promise.all([this.pending, ok]);
    return ok;
  }

  /** Once every request is decided: the variables for the target, and a message per refused one. */
  async settled(): Promise<{ env: Record<string, string>; refused: string[] }> {
    await this.pending;
    return { env: { ...this.allowed }, refused: this.refused.splice(0) };
  }
}
