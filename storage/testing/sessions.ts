// Recorded sessions for tests, built the way relays build them: EventChain hashes, a signed end.
import type { KeyObject } from "node:crypto";
import { EventChain, type EventBody } from "../../lib/recording/chain.js";
import { Decision, type RecordingEvent } from "../../proto/gen/vigil/v1/recording.js";

export interface CommandSpec {
  text: string;
  decision?: "allow" | "deny" | "review";
  /** The result carries this error (a refused or failed command). */
  error?: string;
}

export interface SessionSpec {
  id: string;
  user: string;
  groups?: string[];
  segment: string;
  connection?: string;
  connectionType?: string;
  /** ISO time of session_start; every later event is one second after the previous one. */
  start: string;
  commands: (string | CommandSpec)[];
  /** Sign and end the session (the default); false leaves it running. */
  end?: boolean;
  endError?: string;
}

const DECISIONS = {
  allow: Decision.DECISION_ALLOW,
  deny: Decision.DECISION_DENY,
  review: Decision.DECISION_REVIEW,
} as const;

export function recordSession(spec: SessionSpec, relayKey: KeyObject): RecordingEvent[] {
  const chain = new EventChain(spec.id);
  let t = BigInt(Date.parse(spec.start)) * 1000n;
  const next = () => (t += 1_000_000n) - 1_000_000n;
  const events = [
    chain.append(
      {
        $case: "sessionStart",
        value: {
          connection: spec.connection ?? "pg-orders",
          connectionType: spec.connectionType ?? "postgres",
          segment: spec.segment,
          relayId: `relay-${spec.segment}`,
          hubId: "hub-1",
          user: spec.user,
          groups: spec.groups ?? ["engineers"],
          clientAddress: "10.0.0.7:50123",
          params: [{ key: "database", value: "orders" }],
          target: "db.internal:5432",
        },
      },
      next(),
    ),
  ];
  spec.commands.forEach((c, i) => {
    const command = typeof c === "string" ? { text: c } : c;
    const n = i + 1;
    const decision = command.decision ?? "allow";
    events.push(
      chain.append(
        {
          $case: "command",
          value: {
            command: n,
            text: command.text,
            source: "sql",
            kinds: [command.text.split(" ")[0]!.toLowerCase()],
            tablesRead: [],
            tablesWritten: [],
            params: [{ text: "42" }, {}],
            decision: DECISIONS[decision],
            rule: decision === "allow" ? "" : `${decision}-rule`,
            reason: decision === "deny" ? "not here" : "",
          },
        },
        next(),
      ),
    );
    if (decision === "review") {
      events.push(chain.append(approval(n, "pending"), next()), chain.append(approval(n, "approved"), next()));
    }
    events.push(
      chain.append(
        {
          $case: "result",
          value: {
            command: n,
            tag: command.error ? "" : "SELECT 1",
            rows: command.error ? 0n : 1n,
            bytes: 0n,
            durationUs: 1500n,
            digest: "",
            columns: ["id"],
            sample: [{ values: [{ text: "1" }] }],
            exitStatus: undefined,
            exitSignal: undefined,
            error: command.error ? { code: "42501", message: command.error } : undefined,
          },
        },
        next(),
      ),
    );
  });
  if (spec.end !== false) {
    events.push(
      chain.seal(
        { $case: "sessionEnd", value: { error: spec.endError ?? "", commands: spec.commands.length } },
        relayKey,
        next(),
      ),
    );
  }
  return events;
}

function approval(command: number, status: string): EventBody {
  return {
    $case: "approval",
    value: {
      command,
      approvalId: `approval-${command}`,
      status,
      decisions: status === "pending" ? [] : [{ by: "carol", verdict: "approve", reason: "ok", at: "" }],
      message: "",
    },
  };
}
