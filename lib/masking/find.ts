// Finding what to mask: every detector's matches in a text, merged into ordered, disjoint spans.
//
// Not one regex: an alternation of all detectors ran at ~36 MB/s, because V8's regex engine can only
// skip ahead fast when a pattern starts with a literal, and digits have none. So literal-led matchers
// run each on its own, only when String#indexOf finds their anchor (many GB/s), and the digit-based
// ones are tried, sticky, at the few places one pass of digitCandidates() points at.
import { endianness } from "node:os";
import type { Detector, Span } from "./detectors.js";
import { clusterMayMatch, digitCandidates, MIN_DIGIT_MATCH, opensPhone } from "./scan.js";

export interface Hit extends Span {
  detector: Detector;
  /** The detector's index: the lower wins when two start at the same place. */
  order: number;
}

interface Global {
  detector: Detector;
  order: number;
  /** undefined: run over all text. */
  anchors: readonly string[] | undefined;
  /** Characters a match can start with (for short strings). */
  starts: string;
  lookback: number;
  re: RegExp;
}

interface Sticky {
  detector: Detector;
  order: number;
  re: RegExp;
}

/** Text plus, for the digit scan, its code units: a Buffer's own bytes, or a scratch copy of a string. */
export type Codes = Uint8Array | Uint16Array;
export type Finder = (text: string, codes?: Codes) => Hit[] | undefined;
/**
 * Whether bytes[start, end), read as Latin-1 text, might hold a match: false only when the finder
 * would surely find nothing there (too short, no character any matcher starts with, no place a digit
 * format could start). Reads the bytes where they are, with no string and no copy made.
 */
export type Precheck = (bytes: Uint8Array, start: number, end: number) => boolean;

/** The shortest text any detector matches ("a@b.io"): anything shorter is let through at once. */
const MIN_MATCH = 6;

export function compileFinder(detectors: readonly Detector[]): Finder {
  const global: Global[] = [];
  const sticky: Sticky[] = [];
  detectors.forEach((detector, order) => {
    for (const m of detector.matchers) {
      if (m.trigger === "digits") sticky.push({ detector, order, re: new RegExp(m.source, "y") });
      else if (m.trigger === "scan") {
        const re = new RegExp(m.source, "g");
        global.push({ detector, order, anchors: undefined, starts: m.startChars, lookback: 0, re });
      } else {
        const starts = m.anchors.map((a) => a[0]).join("");
        global.push({
          detector,
          order,
          anchors: m.anchors,
          starts,
          lookback: m.lookback,
          re: new RegExp(m.source, "g"),
        });
      }
    }
  });
  const candidates: number[] = [];
  // For short strings (DataRow values), a dozen indexOf calls cost more than looking at each char
  // once: bit g of firstChars[c] says that a match (or an anchor) of global matcher g starts with c.
  const firstChars = startCharBits(global);
  const filterShort = global.length <= 31; // one bit per matcher

  return (text, codes) => {
    const n = text.length;
    if (n < MIN_MATCH) return undefined;
    let hits: Hit[] | undefined;
    let seen = -1; // which global matchers may match: all, unless the string is short
    if (n <= SHORT) {
      if (filterShort) seen = 0;
      if (codes === undefined) {
        for (let i = 0; i < n; i++) {
          const c = text.charCodeAt(i);
          short[i] = c;
          if (c < 128) seen |= firstChars[c]!;
        }
        codes = short;
      } else if (filterShort) {
        for (let i = 0; i < n; i++) {
          const c = codes[i]!;
          if (c < 128) seen |= firstChars[c]!;
        }
      }
    }

    for (let g = 0; g < global.length; g++) {
      if ((seen & (1 << g)) === 0) continue;
      const a = global[g]!;
      let first = a.anchors ? -1 : 0;
      if (a.anchors)
        for (const anchor of a.anchors) {
          const at = text.indexOf(anchor);
          if (at >= 0 && (first < 0 || at < first)) first = at;
        }
      if (first < 0) continue; // the precheck: no anchor, no regex
      const re = a.re;
      re.lastIndex = Math.max(0, first - a.lookback);
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        const s = a.detector.validate(m, text);
        if (s !== undefined && s.end > s.start) {
          (hits ??= []).push({ start: s.start, end: s.end, detector: a.detector, order: a.order });
          re.lastIndex = Math.max(s.end, m.index + 1);
        } else re.lastIndex = m.index + 1;
      }
    }

    if (sticky.length > 0) {
      if (candidates.length > 0) candidates.length = 0; // setting length is not free: only when needed
      digitCandidates(text, codes ?? codeUnits(text), n, candidates);
      let done = 0;
      for (let k = 0; k < candidates.length; k++) {
        const p = candidates[k]!;
        if (p < done) continue;
        for (const st of sticky) {
          st.re.lastIndex = p;
          const m = st.re.exec(text);
          const s = m === null ? undefined : st.detector.validate(m, text);
          if (s !== undefined && s.end > s.start) {
            (hits ??= []).push({ start: s.start, end: s.end, detector: st.detector, order: st.order });
            done = s.end;
            break; // else another detector may still match here (a Luhn-invalid card may be a phone)
          }
        }
      }
    }
    return hits && disjoint(hits);
  };
}

export function compilePrecheck(detectors: readonly Detector[]): Precheck {
  let digits = false;
  // What each byte is to the precheck; a start character wins over every other role (the safe side).
  const kind = new Uint8Array(256);
  for (const c of "0123456789") kind[c.charCodeAt(0)] = DIGIT;
  for (const c of " -.") kind[c.charCodeAt(0)] = SEPARATOR;
  for (const c of "+(") kind[c.charCodeAt(0)] = OPENER;
  // An anchor of two or more characters must occur whole for its matcher to run: its first two
  // characters side by side are the test (`pairs`), not its first alone ("closed" has an l, not "live_").
  const pairs = new Uint8Array(1 << 16);
  for (const d of detectors) {
    for (const m of d.matchers) {
      if (m.trigger === "digits") digits = true;
      else if (m.trigger === "scan") {
        for (let k = 0; k < m.startChars.length; k++) kind[m.startChars.charCodeAt(k) & 127] = START;
      } else {
        for (const a of m.anchors) {
          const c0 = a.charCodeAt(0) & 127;
          if (a.length < 2 || a.charCodeAt(1) > 255) kind[c0] = START;
          else {
            // Never over a digit, separator or opener: their roles in the digit shapes must stay.
            kind[c0] = kind[c0] === OTHER || kind[c0] === PAIR ? PAIR : START;
            pairs[(c0 << 8) | a.charCodeAt(1)] = 1;
          }
        }
      }
    }
  }
  return (bytes, start, end) => {
    if (end - start < MIN_MATCH) return false;
    // One pass: a character some matcher starts with settles it. Otherwise digit groups are tracked
    // as digitCandidates reads them (groups joined by one separator before a digit), and any three
    // in a row with a format's shape, a run as long as a card, or a phone opener say "maybe": a
    // superset of where digitCandidates points, without its walks.
    const digitsAllowed = digits && end - start >= MIN_DIGIT_MATCH;
    let run = 0; // digits in the current group
    let first = 0; // its first digit
    // The two groups before it in the cluster (length 0: none), each with the separator after it and
    // its first digit: A the older, B the newer.
    let gA = 0;
    let sA = 0;
    let fA = 0;
    let gB = 0;
    let sB = 0;
    let fB = 0;
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      const k = kind[c]!;
      if (k === DIGIT) {
        if (run++ === 0) first = c;
        if (run >= CARD_RUN && digitsAllowed) return true;
        continue;
      }
      if (k === START || (k === PAIR && i + 1 < end && pairs[(c << 8) | bytes[i + 1]!] === 1)) return true;
      if (run > 0) {
        // A group ends: with the two before it, it may have a format's shape.
        if (gA > 0 && digitsAllowed && clusterMayMatch(fA, gA, gB, run, sA, sB)) return true;
        if (k === SEPARATOR && i + 1 < end && kind[bytes[i + 1]!] === DIGIT) {
          // The cluster goes on past this separator: the window moves by one group.
          if (gB > 0) {
            gA = gB;
            sA = sB;
            fA = fB;
          }
          gB = run;
          sB = c;
          fB = first;
          run = 0;
          continue;
        }
      }
      run = 0;
      gA = gB = 0;
      if (k === OPENER && digitsAllowed && opensPhone(bytes, end, i)) return true;
    }
    return run > 0 && gA > 0 && digitsAllowed && clusterMayMatch(fA, gA, gB, run, sA, sB);
  };
}

const OTHER = 0;
const START = 1;
const DIGIT = 2;
const SEPARATOR = 3;
const OPENER = 4;
/** The first character of an anchor: a start when the anchor's second character follows. */
const PAIR = 5;
/** A card written as one run has at least this many digits. */
const CARD_RUN = 13;

/** Bit g of the result's [c] is set when global matcher g (or its anchor) can start with character c. */
function startCharBits(global: readonly { starts: string }[]): Int32Array {
  const bits = new Int32Array(128);
  global.forEach((g, i) => {
    for (let k = 0; k < g.starts.length; k++) {
      const c = g.starts.charCodeAt(k) & 127;
      bits[c] = bits[c]! | (1 << (i % 32));
    }
  });
  return bits;
}

/** Sorted by start; a hit that overlaps an earlier one keeps only the part past it (never dropped whole
 *  unless covered), so the union of what is masked never shrinks. */
function disjoint(hits: Hit[]): Hit[] {
  if (hits.length === 1) return hits;
  hits.sort((a, b) => a.start - b.start || a.order - b.order);
  const out: Hit[] = [];
  let end = 0;
  for (const h of hits) {
    if (h.end <= end) continue;
    if (h.start < end) h.start = end;
    out.push(h);
    end = h.end;
  }
  return out;
}

// Scratch space for the code units of strings, reused across calls (masking is synchronous). Strings
// longer than SCRATCH_MAX get a one-off array so a single huge value does not pin memory.
const SCRATCH_MAX = 4 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === "LE";
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
const BEYOND_LATIN1 = /[\u0100-\uffff]/;

const SHORT = 256;
const short = new Uint16Array(SHORT);

function codeUnits(text: string): Codes {
  const n = text.length;
  const wide = BEYOND_LATIN1.test(text); // instant for V8's one-byte strings
  const bytes = wide ? 2 * n : n;
  let buf = scratch;
  if (bytes > buf.length) {
    buf = Buffer.allocUnsafeSlow(bytes);
    if (bytes <= SCRATCH_MAX) scratch = buf;
  }
  if (!wide) {
    buf.write(text, 0, n, "latin1");
    return buf;
  }
  const units = new Uint16Array(buf.buffer, buf.byteOffset, n);
  if (LITTLE_ENDIAN) buf.write(text, 0, bytes, "utf16le");
  else for (let i = 0; i < n; i++) units[i] = text.charCodeAt(i);
  return units;
}
