import type { Command } from "../../../../lib/policy/command.js";
import { evaluate, type Decision, type MaskPlan } from "../../../../lib/policy/evaluate.js";
import { Decision as RecordedDecision } from "../../../../proto/gen/vigil/v1/recording.js";
import { MaskerCache } from "../postgres/row-masker.js";
import type { SessionContext } from "../engine.js";

/** Where a command came from, as the recording names it. */
export type CommandSource = "exec" | "shell" | "sftp" | "forward" | "env" | "signal";

/** The outcome of judging one command: run it (with these masks) or refuse it with a message. */
export type Verdict = { run: true; seq: number; masks: MaskPlan } | { run: false; seq: number; message: string };

const DECISIONS = {
  allow: RecordedDecision.DECISION_ALLOW,
  deny: RecordedDecision.DECISION_DENY,
  review: RecordedDecision.DECISION_REVIEW,
} as const;

/** Rule id for what needs an allowing rule and has none. */
export const NO_ALLOW_RULE = "vigil/not-allowed-by-any-rule";

/** How much of a command's text the recording keeps. */
const RECORDED_TEXT_CHARS = 64 * 1024;

/**
 * Judges every command of one SSH session (exec commands, interactive lines, sftp operations) with
 * the session's current policy, records it with its decision, and runs reviews through the hub.
 * One numbering for the whole session, so results and output events point at their command.
 */
export class CommandJudge {
  private commands = 0;
  readonly maskers = new MaskerCache();

  constructor(private readonly ctx: SessionContext) {}

  /**
   * @param onPending told the approval id as soon as the hub holds the request (to tell the client)
   * @param kinds what the recording lists as the command's kinds (argv[0] of each simple command)
   */
  async judge(
    source: CommandSource,
    command: Command,
    kinds: string[],
    onPending: (approvalId: string, rule: string, seq: number) => void,
    opts: {
      needsAllowRule?: boolean;
      /** A refusal of Vigil's own that no policy can lift (it is recorded like a rule's). */
      refuse?: { rule: string; reason: string };
    } = {},
  ): Promise<Verdict> {
    const seq = ++this.commands;
    // Nothing runs unrecorded.
    if (!this.ctx.recording.ok()) {
      return { run: false, seq, message: "the session's recording is unavailable; commands are refused" };
    }
    let decision: Decision = opts.refuse
      ? { effect: "deny", ...opts.refuse }
      : evaluate(this.ctx.policy.current, command);
    // Some things (port forwarding) are off unless a rule turns them on.
    if (opts.needsAllowRule && decision.effect === "allow" && !decision.rule) {
      decision = { effect: "deny", rule: NO_ALLOW_RULE, reason: "refused unless a policy rule allows it" };
    }
    this.record(seq, source, command.text, kinds, decision);
    if (decision.effect === "deny") {
      const why = decision.reason.includes(decision.rule)
        ? decision.reason
        : `${decision.reason} (rule ${decision.rule})`;
      return { run: false, seq, message: why };
    }
    if (decision.effect === "allow") return { run: true, seq, masks: decision.masks };

    const text = this.recordText(command.text, decision.masks);
    const outcome = await this.ctx.requestApproval({ rule: decision.rule, command: text }, (approvalId) => {
      this.ctx.recording.record({
        $case: "approval",
        value: { command: seq, approvalId, status: "pending", decisions: [], message: "" },
      });
      onPending(approvalId, decision.rule, seq);
    });
    this.ctx.recording.record({
      $case: "approval",
      value: {
        command: seq,
        approvalId: outcome.approvalId,
        status: outcome.status,
        decisions: outcome.decisions,
        message: outcome.message ?? "",
      },
    });
    this.ctx.log.info({ approval: outcome.approvalId, status: outcome.status, source }, "held command decided");
    if (outcome.status === "approved") return { run: true, seq, masks: decision.masks };
    const message =
      outcome.status === "expired"
        ? `approval ${outcome.approvalId} timed out (rule ${decision.rule})`
        : outcome.status === "denied"
          ? `approval ${outcome.approvalId} was denied (rule ${decision.rule})`
          : `no approval could be requested: ${outcome.message}`;
    return { run: false, seq, message };
  }

  /** Record a command that was not judged (an interactive line that is not shell syntax); returns its number. */
  note(source: CommandSource, text: string, kinds: string[], reason: string): number {
    const seq = ++this.commands;
    this.ctx.recording.record({
      $case: "command",
      value: {
        command: seq,
        text: this.recordText(text, undefined),
        source,
        kinds,
        tablesRead: [],
        tablesWritten: [],
        params: [],
        decision: RecordedDecision.DECISION_UNSPECIFIED,
        rule: "",
        reason,
      },
    });
    return seq;
  }

  /** Text for the record: the record masks' detectors over it (a password on a command line…). */
  recordText(text: string, masks: MaskPlan | undefined): string {
    if (text.length > RECORDED_TEXT_CHARS) {
      text = `${text.slice(0, RECORDED_TEXT_CHARS)}…(${text.length - RECORDED_TEXT_CHARS} more characters)`;
    }
    const masker = this.maskers.get((masks ?? this.ctx.policy.current.baseMasks).record);
    return masker ? masker.maskText(text).text : text;
  }

  private record(seq: number, source: CommandSource, text: string, kinds: string[], decision: Decision): void {
    this.ctx.recording.record({
      $case: "command",
      value: {
        command: seq,
        text: this.recordText(text, decision.effect === "deny" ? undefined : decision.masks),
        source,
        kinds,
        tablesRead: [],
        tablesWritten: [],
        params: [],
        decision: DECISIONS[decision.effect],
        rule: decision.rule ?? "",
        reason: decision.effect === "deny" ? decision.reason : "",
      },
    });
  }
}

/** A Result body with every field empty, to fill in what an SSH command has. */
export function emptyResult(command: number) {
  return {
    command,
    tag: "",
    rows: 0n,
    bytes: 0n,
    durationUs: 0n,
    digest: "",
    columns: [],
    sample: [],
    error: undefined,
  };
}
