// What a masked value becomes. Lengths are not preserved: DataRow lengths are recomputed and terminal
// and HTTP output is re-framed, so a placeholder can say what was there instead.
import { createHmac, randomBytes } from "node:crypto";
import type { Detector } from "./detectors.js";

export type Replacement = "redact" | "partial" | "hash";

/** A value masked whole by a column or field rule (and the fail-closed result on any internal error). */
export const WHOLE_REDACTION = "[masked]";

export interface Replacer {
  /** Replacement for a detector match. */
  match(detector: Detector, value: string): string;
  /** Replacement for a whole string value hit by a column or field rule. */
  whole(value: string): string;
  /** Replacement for a whole JSON value (any type) hit by a field rule; null stays null. */
  wholeJson(value: unknown): unknown;
  /** Set when `whole` answers this for every value (redaction): callers may skip decoding the value. */
  wholeConstant?: string;
}

// Generated once per process, so hashes join across all maskers (and sessions) of one relay, but
// cannot be precomputed from a dictionary by anyone who reads the output. Set MaskSpec.hashKey to join
// across processes.
const PROCESS_KEY = randomBytes(32);

/**
 * `recognize` says which detector, if any, matches a whole value: a column or field value that is
 * plainly a card, SSN or email gets that detector's partial form and is hashed like the same value
 * found in free text (so they join); any other value (a password, a PIN) is never shown in part.
 */
export function compileReplacer(
  mode: Replacement,
  hashKey: string | Uint8Array | undefined,
  recognize: (value: string) => Detector | undefined,
): Replacer {
  const key = hashKey === undefined ? PROCESS_KEY : hashKey;
  const hash = (value: string): string =>
    `[hash:${createHmac("sha256", key).update(value, "utf8").digest("hex").slice(0, 12)}]`;
  const scalar = (v: unknown): string | undefined =>
    typeof v === "string" ? v : typeof v === "number" || typeof v === "bigint" ? String(v) : undefined;

  switch (mode) {
    case "hash": {
      const whole = (v: string): string => {
        const d = recognize(v);
        return hash(d ? d.normalize(v) : v);
      };
      return {
        match: (d, v) => hash(d.normalize(v)),
        whole,
        wholeJson: (v) => (v === null ? v : whole(scalar(v) ?? JSON.stringify(v) ?? String(v))),
      };
    }
    case "partial": {
      const whole = (v: string): string => recognize(v)?.partial(v) ?? WHOLE_REDACTION;
      return {
        match: (d, v) => d.partial(v),
        whole,
        wholeJson: (v) => {
          if (v === null) return v;
          const s = scalar(v);
          return s === undefined ? WHOLE_REDACTION : whole(s);
        },
      };
    }
    default:
      return {
        match: (d) => `[masked:${d.name}]`,
        whole: () => WHOLE_REDACTION,
        wholeJson: (v) => (v === null ? v : WHOLE_REDACTION),
        wholeConstant: WHOLE_REDACTION,
      };
  }
}
