// The digit scan and the checksums the digit-based detectors share. Cards, national ids and phones
// have no literal a fast string search could find, so a scan over the character codes finds the few
// places where one could start, and their regexes are tried only there. It reads typed arrays (bytes
// of a chunk, or code units of a string): element loads are about twice as fast as String#charCodeAt.

const SP = 32;
const DASH = 45;
const DOT = 46;
const OPEN = 40;
const PLUS = 43;
const CLOSE = 41;
const ZERO = 48;
/**
 * Every format spans ≥ 11 chars (SSN 3-2-4, SIN 3-3-3, NANP 3-3-4, trunk 0x-3-3+ with ≥ 10 digits,
 * cards ≥ 13) and never has two non-digits in a row, so a probe of two adjacent positions every ten
 * characters hits a digit of each.
 */
const STRIDE = 10;

/**
 * The shortest text a digit-triggered format matches: `+` and 8 digits (the fewest the phone
 * validator takes for E.164). Every other format is longer (SSN and SIN 11, cards 13, national phones 12).
 */
export const MIN_DIGIT_MATCH = 9;

const isDigit = (c: number): boolean => (c - ZERO) >>> 0 < 10;
const isSep = (c: number): boolean => c === SP || c === DASH || c === DOT;
const isWordChar = (c: number | undefined): boolean =>
  c !== undefined && ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95);

/**
 * Appends to `out`, in ascending order, every position in c[0, n) where a card, SSN, SIN or phone
 * match could start: a superset of what those regexes accept, but few positions in ordinary text.
 *
 * A "cluster" is digit groups joined by single spaces, dashes or dots. The regexes only start a match
 * at a cluster's start, or at a group right after a space (a list of dashed numbers), and only where
 * the next three groups have a shape some format has: ≥ 13 digits in one run (card), 4␣4 / 4␣6 (card),
 * 3-2-4 (SSN), 3␣3␣3 (SIN), 3-3-4 or 1-3-3 (NANP phone), 0x…␣3–4␣3–4 (trunk-prefixed phone). So
 * timestamps (4-2-2), IP addresses (dots, groups ≤ 3) and plain ids (< 13 digits) are no candidates.
 * The scan probes two adjacent positions every STRIDE characters and walks a cluster only where one of
 * them is a digit: most of the text is never read.
 *
 * `+` and `(` followed by ≥ 8 digits within 32 digit/separator/parenthesis characters are candidates
 * too (international phones; `(555) 123-4567`); `text`, when given, is there to find them with indexOf.
 *
 * With `start`, only c[start, n) is the text (a value inside a larger message): nothing before
 * `start` is read, and positions are indices into `c`.
 */
export function digitCandidates(
  text: string | undefined,
  c: Uint8Array | Uint16Array,
  n: number,
  out: number[],
  start = 0,
): void {
  const from = out.length;
  let p = start;
  let lo = start; // everything before lo belongs to clusters already judged
  while (p < n) {
    let q = p;
    if (!isDigit(c[q]!)) {
      q = p + 1;
      if (q >= n || !isDigit(c[q]!)) {
        p += STRIDE;
        continue;
      }
    }
    let cluster = q; // walk back to the start of the cluster q is in
    for (;;) {
      if (cluster - 1 >= lo && isDigit(c[cluster - 1]!)) cluster--;
      else if (cluster - 2 >= lo && isSep(c[cluster - 1]!) && isDigit(c[cluster - 2]!)) cluster -= 2;
      else break;
    }
    // Walk forward over the groups, judging each possible start on the shape of the three groups from it.
    let i = cluster;
    let p0 = -1; // two groups back: start, length, separator after it
    let l0 = 0;
    let s0 = 0;
    let p1 = -1; // one group back
    let l1 = 0;
    let s1 = 0;
    for (;;) {
      const groupStart = i;
      while (i < n && isDigit(c[i]!)) i++;
      if (p0 >= 0 && (p0 === cluster || c[p0 - 1] === SP))
        consider(c, start, cluster, p0, l0, s0, l1, s1, i - groupStart, out);
      const sep = i + 1 < n && isSep(c[i]!) && isDigit(c[i + 1]!) ? c[i]! : 0;
      p0 = p1;
      l0 = l1;
      s0 = s1;
      p1 = groupStart;
      l1 = i - groupStart;
      s1 = sep;
      if (sep === 0) break;
      i++;
    }
    // Fewer than three groups left: only a card in one run (which starts a cluster) still fits.
    if (p0 === cluster && l0 >= 13) consider(c, start, cluster, p0, l0, 0, 0, 0, 0, out);
    else if (p1 === cluster && l1 >= 13) consider(c, start, cluster, p1, l1, 0, 0, 0, 0, out);
    lo = i;
    p = i + 1;
  }
  const clusters = out.length;
  if (text !== undefined) {
    for (const opener of ["+", "("]) {
      for (let at = text.indexOf(opener, start); at >= 0 && at < n; at = text.indexOf(opener, at + 1)) {
        if (opensPhone(c, n, at)) out.push(at);
      }
    }
  } else {
    for (let at = start; at < n; at++) if ((c[at] === PLUS || c[at] === OPEN) && opensPhone(c, n, at)) out.push(at);
  }
  if (out.length > clusters && clusters > from) {
    const sorted = out.slice(from).sort((a, b) => a - b);
    for (let k = 0; k < sorted.length; k++) out[from + k] = sorted[k]!;
  }
}

function consider(
  c: Uint8Array | Uint16Array,
  textStart: number,
  clusterStart: number,
  at: number,
  g1: number,
  s1: number,
  g2: number,
  s2: number,
  g3: number,
  out: number[],
): void {
  // The regexes refuse to start right after a letter or underscore (hex ids, words).
  if (at === clusterStart && at > textStart && isWordChar(c[at - 1])) return;
  if (clusterMayMatch(c[at]!, g1, g2, g3, s1, s2)) out.push(at);
}

/** Whether three digit groups joined by s1 and s2 have the shape of some format (first: g1's first char). */
export function clusterMayMatch(first: number, g1: number, g2: number, g3: number, s1: number, s2: number): boolean {
  if (g1 >= 13) return true; // a card written as one run
  if (g3 === 0 || s2 !== s1) return false; // every separated format has ≥ 3 groups, one separator kind
  const spaceOrDash = s1 === SP || s1 === DASH;
  return (
    (g1 === 4 && spaceOrDash && (g2 === 4 || g2 === 6)) || // card 4-4-4-4, 4-6-5, 4-6-4
    (g1 === 3 && s1 === DASH && g2 === 2 && g3 === 4) || // SSN
    (g1 === 3 && spaceOrDash && g2 === 3 && g3 === 3) || // SIN
    (g1 === 3 && s1 !== SP && g2 === 3 && g3 === 4) || // 555-123-4567, 555.123.4567
    (g1 === 1 && s1 !== SP && g2 === 3 && g3 === 3) || // 1-555-123-4567
    (first === ZERO && g1 >= 2 && g1 <= 5 && spaceOrDash && g2 >= 3 && g2 <= 4 && g3 >= 3 && g3 <= 4) // 020 7946 0958
  );
}

/** `+` or `(` at `at` followed by ≥ 8 digits within 32 digit/separator/parenthesis characters. */
export function opensPhone(c: Uint8Array | Uint16Array, n: number, at: number): boolean {
  return at + 1 < n && isDigit(c[at + 1]!) && looseDigits(c, n, at + 1) >= 8;
}

function looseDigits(c: Uint8Array | Uint16Array, n: number, from: number): number {
  let digits = 0;
  const end = Math.min(n, from + 32);
  for (let j = from; j < end; j++) {
    const ch = c[j]!;
    if (isDigit(ch)) digits++;
    else if (ch !== SP && ch !== DASH && ch !== DOT && ch !== OPEN && ch !== CLOSE) break;
  }
  return digits;
}

/** Luhn (mod 10) check over a string of ASCII digits. */
export function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - ZERO;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Digits of `s` only (drops separators). */
export function onlyDigits(s: string): string {
  return s.replace(/\D+/g, "");
}

/** Number of ASCII digits in `s`. */
export function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i))) n++;
  return n;
}

/**
 * Whether a 13–19 digit number has the prefix and length of a payment card network (ISO/IEC 7812
 * IIN ranges). Requiring this on top of Luhn keeps 13-digit millisecond timestamps (which start with
 * 1) and most numeric ids out: prefixes 0, 1 (UATP airline cards), 7, 8 and 9 are never flagged.
 */
export function cardPrefixOk(d: string): boolean {
  const len = d.length;
  const p2 = Number(d.slice(0, 2));
  const p3 = Number(d.slice(0, 3));
  const p4 = Number(d.slice(0, 4));
  switch (d.charCodeAt(0) - ZERO) {
    case 2: // Mastercard 2-series, Mir
      return (p4 >= 2221 && p4 <= 2720 && len === 16) || (p4 >= 2200 && p4 <= 2204 && len >= 16);
    case 3: // Amex, JCB, Diners
      return (
        ((p2 === 34 || p2 === 37) && len === 15) ||
        (p4 >= 3528 && p4 <= 3589 && len >= 16) ||
        (((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) && len >= 14)
      );
    case 4: // Visa
      return len === 13 || len === 16 || len === 19;
    case 5: // Mastercard 51–55; Maestro 50, 56–59
      return p2 >= 51 && p2 <= 55 ? len === 16 : true;
    case 6: // Discover, UnionPay, Maestro, RuPay, …
      return true;
    default:
      return false;
  }
}
