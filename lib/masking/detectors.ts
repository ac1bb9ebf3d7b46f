// Named detectors for sensitive data in results. Each has a cheap precheck (a literal found with
// indexOf, or a place the digit scan points at), a precise regex tried only there, and a validator
// (checksums, number ranges, decoding) that turns lookalikes down.
import { cardPrefixOk, countDigits, luhn, onlyDigits } from "./scan.js";

export type DetectorName = "email" | "card" | "national_id" | "phone" | "jwt" | "cloud_key" | "private_key";

/** A half-open range of the text to replace. */
export interface Span {
  start: number;
  end: number;
}

/**
 * A precheck and the regex it guards. Regexes use named groups (prefixed with the detector's name) so
 * validators can read them, and are never run over text the precheck turned down.
 */
export type Matcher =
  | {
      /** Runs (global) only if one of `anchors` occurs (indexOf), from `lookback` chars before the first. */
      trigger: "anchors";
      anchors: readonly string[];
      lookback: number;
      source: string;
    }
  | {
      /** Tried (sticky) only at the positions digitCandidates() yields. */
      trigger: "digits";
      source: string;
    }
  | {
      /** Runs (global) over all text: for a regex V8 scans fast by itself (few, rare start characters). */
      trigger: "scan";
      /** Every character a match can start with (ASCII): lets short strings without one skip the regex. */
      startChars: string;
      source: string;
    };

export interface Detector {
  readonly name: DetectorName;
  readonly matchers: readonly Matcher[];
  /** Checks a regex match (m.index is where it starts in `text`); the span to mask, or undefined. */
  validate(m: RegExpExecArray, text: string): Span | undefined;
  /** What `hash` replacement hashes: equal values (e.g. the same card with other separators) agree. */
  normalize(value: string): string;
  /** The `partial` replacement for a matched value. */
  partial(value: string): string;
}

// Not a letter, digit or underscore before/after: the value is not part of a longer token.
const NOT_AFTER_WORD = "(?<![A-Za-z0-9_])";
const NOT_BEFORE_WORD = "(?![A-Za-z0-9_])";
// Any non-ASCII character counts as part of an address (names with diacritics, Cyrillic mailboxes,
// IDN domains). In a byte stream read as latin1 that is every byte ≥ 0x80, so a multibyte character
// is taken whole or not at all; the price is that text written without spaces around an address
// (CJK, say) is masked along with it.
const ADDR = "A-Za-z0-9\\u0080-\\uFFFF";

const span = (m: RegExpExecArray): Span => ({ start: m.index, end: m.index + m[0].length });
const same = (v: string): string => v;
const alnumUpper = (v: string): string => v.replace(/[^0-9A-Za-z]+/g, "").toUpperCase();
const tag = (name: DetectorName) => () => `[masked:${name}]`;

/** Keeps the last four digits and the separators; every other letter or digit becomes `*`. */
export function lastFourDigits(value: string): string {
  let keep = 4;
  const out = value.split("");
  for (let i = out.length - 1; i >= 0; i--) {
    const c = value.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (keep > 0) keep--;
      else out[i] = "*";
    } else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) out[i] = "*";
  }
  return out.join("");
}

/** `***@example.com`: the domain stays, the mailbox goes. */
export function emailPartial(value: string): string {
  const at = value.lastIndexOf("@");
  return at < 0 ? "***" : `***${value.slice(at)}`;
}

const email: Detector = {
  name: "email",
  matchers: [
    {
      trigger: "anchors",
      anchors: ["@"],
      lookback: 0,
      // Starts at the '@' (rare, so the regex engine skips to it) and captures the mailbox with a
      // lookbehind; a pattern starting at the mailbox would be tried at every letter of the text.
      // The TLD is ASCII letters or punycode; what follows it must not continue an ASCII hostname.
      source:
        `@(?<=(?<email_local>[${ADDR}._%+\\-]+)@)(?:[${ADDR}-]{1,63}\\.)+` +
        "(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})(?![A-Za-z0-9-])",
    },
  ],
  validate(m) {
    const local = (m.groups?.email_local ?? "").replace(/^\.+/, "");
    if (!local) return undefined;
    return { start: m.index - local.length, end: m.index + m[0].length };
  },
  normalize: (v) => v.toLowerCase(),
  partial: emailPartial,
};

const card: Detector = {
  name: "card",
  matchers: [
    {
      trigger: "digits",
      // 13–19 digits as one run, as 4-4-4-4(-3) groups, or as Amex/Diners 4-6-5 / 4-6-4, with one kind
      // of separator; not inside a longer number, word or decimal.
      source:
        "(?<![A-Za-z0-9_.]|\\d[ -])(?:\\d{13,19}" +
        "|\\d{4}(?<card_sep>[ -])\\d{4}\\k<card_sep>\\d{4}\\k<card_sep>\\d{1,4}(?:\\k<card_sep>\\d{1,3})?" +
        "|\\d{4}(?<card_sep6>[ -])\\d{6}\\k<card_sep6>\\d{4,5})(?![A-Za-z0-9_]|[.,]\\d)",
    },
  ],
  validate(m) {
    // A card followed by another short number ("4111 1111 1111 1111 12") matches with the extra group
    // attached: retry without the last group before giving up.
    let text = m[0];
    for (;;) {
      const digits = onlyDigits(text);
      if (digits.length >= 13 && cardPrefixOk(digits) && luhn(digits))
        return { start: m.index, end: m.index + text.length };
      const cut = Math.max(text.lastIndexOf(" "), text.lastIndexOf("-"));
      if (cut < 0) return undefined;
      text = text.slice(0, cut);
    }
  },
  normalize: onlyDigits,
  partial: lastFourDigits,
};

// A dash- or dot-separated number may follow another after a space (a list); one separated by spaces
// may not (it would be the tail of a longer run of numbers).
const SSN = "(?<![A-Za-z0-9_]|\\d[.-])(?<nid_ssn>\\d{3}-\\d{2}-\\d{4})(?![A-Za-z0-9_]|-\\d)";
const SIN =
  "(?<![A-Za-z0-9_]|\\d[ .-])(?<nid_sin>\\d{3}(?<nid_sep>[ -])\\d{3}\\k<nid_sep>\\d{3})(?![A-Za-z0-9_]|[ -]\\d)";
const NINO = `${NOT_AFTER_WORD}(?<nid_nino>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z](?:\\d{6}|(?: \\d\\d){3} )[A-D])${NOT_BEFORE_WORD}`;
const NINO_BAD_PREFIX = new Set(["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"]);

const nationalId: Detector = {
  name: "national_id",
  // A NINO has only six digits, too few for the digit scan; its regex starts with two capitals from a
  // small set and V8 scans for it at ~1 GB/s on its own.
  matchers: [
    { trigger: "digits", source: `${SSN}|${SIN}` },
    { trigger: "scan", startChars: "ABCEGHJKLMNOPRSTWXYZ", source: NINO },
  ],
  validate(m) {
    const g = m.groups ?? {};
    if (g.nid_ssn !== undefined) {
      // SSA rules: area not 000, 666 or 900–999; group not 00; serial not 0000.
      const area = Number(g.nid_ssn.slice(0, 3));
      const ok = area !== 0 && area !== 666 && area < 900 && g.nid_ssn.slice(4, 6) !== "00";
      return ok && g.nid_ssn.slice(7) !== "0000" ? span(m) : undefined;
    }
    if (g.nid_sin !== undefined) {
      // Canadian SIN: Luhn-valid, and 0 and 8 are not issued as first digits.
      const d = onlyDigits(g.nid_sin);
      return d[0] !== "0" && d[0] !== "8" && luhn(d) ? span(m) : undefined;
    }
    return NINO_BAD_PREFIX.has(m[0].slice(0, 2)) ? undefined : span(m);
  },
  normalize: alnumUpper,
  partial: lastFourDigits,
};

// International: `+`, then digits in groups separated by one space/dot/dash, one group may be in
// parentheses. National: (555) 123-4567, 555-123-4567 / 555.123.4567, and trunk-0 numbers such as
// 020 7946 0958 or 03-1234-5678. A bare digit run is never a phone: that is what ids look like.
const PHONE_INTL = "(?<![A-Za-z0-9_+])\\+\\d+(?:[ .-]?\\(\\d+\\)[ .-]?\\d+|[ .-]\\d+)*(?![A-Za-z0-9_])";
const PHONE_PAREN = "(?<![A-Za-z0-9_])\\(\\d{2,4}\\) ?\\d{3,4}[ .-]\\d{4}(?![A-Za-z0-9_]|[ .-]\\d)";
const PHONE_NANP =
  "(?<![A-Za-z0-9_]|\\d[.-])(?:1[.-])?\\d{3}(?<phone_sep>[.-])\\d{3}\\k<phone_sep>\\d{4}(?![A-Za-z0-9_]|[.-]\\d)";
const PHONE_TRUNK =
  "(?<![A-Za-z0-9_]|\\d[ .-])0\\d{1,4}(?<phone_tsep>[ -])\\d{3,4}\\k<phone_tsep>\\d{3,4}(?![A-Za-z0-9_]|[ -]\\d)";

const phone: Detector = {
  name: "phone",
  matchers: [{ trigger: "digits", source: `${PHONE_INTL}|${PHONE_PAREN}|${PHONE_NANP}|${PHONE_TRUNK}` }],
  validate(m) {
    const n = countDigits(m[0]);
    if (m[0].charCodeAt(0) === 43 /* + */) return n >= 8 && n <= 15 ? span(m) : undefined; // E.164
    return n >= 10 && n <= 12 ? span(m) : undefined; // national numbers have 10–12 digits
  },
  normalize: (v) => (v.startsWith("+") ? "+" : "") + onlyDigits(v),
  partial: lastFourDigits,
};

const B64URL = "[A-Za-z0-9_-]";
const jwt: Detector = {
  name: "jwt",
  matchers: [
    {
      // "eyJ" is base64url of `{"`, how every JOSE header starts; "yJ" is the cheaper search ('e' is
      // the commonest letter). JWS has three parts (the signature is empty for alg "none"), JWE five.
      trigger: "anchors",
      anchors: ["yJ"],
      lookback: 1,
      source: `(?<!${B64URL})eyJ${B64URL}{5,}(?:\\.${B64URL}*){2}(?:\\.${B64URL}*\\.${B64URL}*)?(?!${B64URL})`,
    },
  ],
  validate(m) {
    const header = m[0].slice(0, m[0].indexOf("."));
    if (header.length > 4096) return undefined;
    try {
      const parsed: unknown = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
      const alg = typeof parsed === "object" && parsed !== null ? (parsed as { alg?: unknown }).alg : undefined;
      return typeof alg === "string" ? span(m) : undefined;
    } catch {
      return undefined; // not a JOSE header: a lookalike
    }
  },
  normalize: same,
  partial: tag("jwt"),
};

// Vendors put literal prefixes on their credentials, so a match is a key, not a lookalike. The AWS
// secret access key has no prefix (40 base64 chars), so it only counts right after its name; then only
// the value is masked. Anchors are picked to be cheap to search for: indexOf runs at memory speed when
// the first character is rare (capitals, 'x', '@') and at ~1–2 GB/s when it is a common letter.
const cloudKey: Detector = {
  name: "cloud_key",
  matchers: [
    {
      trigger: "anchors",
      anchors: ["AKIA", "ASIA"],
      lookback: 0,
      source: "(?<![A-Za-z0-9])A[KS]IA[0-9A-Z]{16}(?![A-Za-z0-9])",
    },
    {
      trigger: "anchors",
      anchors: ["AIza"],
      lookback: 0,
      source: "(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
    },
    {
      trigger: "anchors",
      anchors: ["gh", "_pat_"],
      lookback: 6,
      source: "(?<![A-Za-z0-9])g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9])",
    },
    {
      trigger: "anchors",
      anchors: ["xox"],
      lookback: 0,
      source: "(?<![A-Za-z0-9])xox[baprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])",
    },
    {
      trigger: "anchors",
      anchors: ["live_"],
      lookback: 3,
      source: "(?<![A-Za-z0-9])[rs]k_live_[A-Za-z0-9]{16,247}(?![A-Za-z0-9])",
    },
    {
      trigger: "anchors",
      anchors: ["Access", "ACCESS", "_access_key"],
      lookback: 8,
      source:
        "[Ss](?:ecret_?[Aa]ccess_?[Kk]ey|ECRET_?ACCESS_?KEY)[\"']?[ \\t]*[:=][ \\t]*[\"']?" +
        "(?<cloud_secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
    },
  ],
  validate(m) {
    const secret = m.groups?.cloud_secret;
    if (secret === undefined) return span(m);
    const end = m.index + m[0].length;
    return { start: end - secret.length, end };
  },
  normalize: same,
  partial: tag("cloud_key"),
};

const PEM_END = /-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/g;
const privateKey: Detector = {
  name: "private_key",
  matchers: [
    {
      trigger: "anchors",
      anchors: ["PRIVATE KEY"],
      lookback: 64,
      // The regex is only the BEGIN line; validate looks for the END line with a separate, literal-led
      // search, so a key that is megabytes long or never closed cannot make a regex backtrack.
      source: "-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----",
    },
  ],
  validate(m, text) {
    PEM_END.lastIndex = m.index + m[0].length;
    const end = PEM_END.exec(text);
    // No END line (output cut short, or a chunk boundary): mask to the end rather than leak the body.
    return { start: m.index, end: end ? end.index + end[0].length : text.length };
  },
  normalize: same,
  partial: tag("private_key"),
};

/** Every detector, in the order the masker prefers them when two match at the same place. */
export const DEFAULT_DETECTORS: readonly Detector[] = [privateKey, jwt, cloudKey, email, card, nationalId, phone];

export const DETECTOR_NAMES: readonly DetectorName[] = DEFAULT_DETECTORS.map((d) => d.name);
