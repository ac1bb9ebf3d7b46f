/*
 * Brace expansion, as bash does before running a command: `{rm,-rf,/}` runs rm, `/{etc,usr}` names two paths.
 * Only applied to words without quoting (the caller knows); the output is capped so that `{a,b}{a,b}…` cannot
 * blow up, and the caller reports a parse error instead.
 */

/** Characters scanned or produced per word, at least; a long word gets a few times its length. */
const BUDGET = 1 << 16;

export class BraceExpansionTooLarge extends Error {
  constructor() {
    super("brace expansion too large");
  }
}

export function expandBraces(word: string): string[] {
  if (!word.includes("{") || !word.includes("}")) return [word];
  const budget = { left: Math.max(BUDGET, 4 * word.length) };
  return expand(word, 0, budget);
}

function expand(word: string, from: number, budget: { left: number }): string[] {
  budget.left -= word.length;
  if (budget.left < 0) throw new BraceExpansionTooLarge();
  for (let i = word.indexOf("{", from); i >= 0; i = word.indexOf("{", i + 1)) {
    const group = braceGroup(word, i, budget);
    if (!group) continue;
    const prefix = word.slice(0, i);
    const suffix = word.slice(group.end + 1);
    const results: string[] = [];
    for (const alternative of group.alternatives) {
      // The prefix holds no expandable group (this one is the first), so later scans start after it.
      for (const r of expand(prefix + alternative + suffix, prefix.length, budget)) results.push(r);
    }
    return results;
  }
  return [word];
}

/** The group opening at `open`: its comma-separated (or sequence) alternatives, or undefined if literal. */
function braceGroup(
  word: string,
  open: number,
  budget: { left: number },
): { alternatives: string[]; end: number } | undefined {
  let depth = 0;
  let start = open + 1;
  const parts: string[] = [];
  for (let j = open; j < word.length; j++) {
    if (--budget.left < 0) throw new BraceExpansionTooLarge();
    const c = word[j];
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) {
      const last = word.slice(start, j);
      if (parts.length > 0) return { alternatives: [...parts, last], end: j };
      const sequence = sequenceOf(last);
      return sequence ? { alternatives: sequence, end: j } : undefined;
    } else if (c === "," && depth === 1) {
      parts.push(word.slice(start, j));
      start = j + 1;
    }
  }
  return undefined;
}

/** `{1..5}`, `{10..0..2}`, `{a..e}`. */
function sequenceOf(body: string): string[] | undefined {
  const m = /^(-?\d{1,9}|[A-Za-z])\.\.(-?\d{1,9}|[A-Za-z])(?:\.\.(-?\d{1,9}))?$/.exec(body);
  if (!m) return undefined;
  const [, a = "", b = "", stepText] = m;
  const numeric = /\d/.test(a);
  if (numeric !== /\d/.test(b)) return undefined;
  const from = numeric ? Number(a) : a.charCodeAt(0);
  const to = numeric ? Number(b) : b.charCodeAt(0);
  const step = Math.abs(Number(stepText ?? 1)) || 1;
  if (Math.abs(to - from) / step > BUDGET) throw new BraceExpansionTooLarge();
  const out: string[] = [];
  for (let v = from; from <= to ? v <= to : v >= to; v += from <= to ? step : -step) {
    out.push(numeric ? String(v) : String.fromCharCode(v));
  }
  return out;
}
