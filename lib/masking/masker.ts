// The masking engine protocol engines call on the hot path. Policy compiles mask rules into a MaskSpec
// once; compileMasker turns that into closures that do no parsing or regex compilation per call.
import { spliceBytes } from "./bytes.js";
import { DEFAULT_DETECTORS, type Detector, type DetectorName } from "./detectors.js";
import { compileFinder, compilePrecheck, type Hit } from "./find.js";
import { compileReplacer, WHOLE_REDACTION, type Replacement } from "./replacement.js";
import { compileColumnRules, compileFieldRules } from "./rules.js";

export type { DetectorName } from "./detectors.js";
export type { Replacement } from "./replacement.js";
export { WHOLE_REDACTION } from "./replacement.js";

export interface MaskSpec {
  /** Detectors run over all text (results, output, string leaves of JSON). */
  detectors: DetectorName[];
  /** Column globs whose values are masked whole: "users.email", "*.password", "ssn" (bare = any table). */
  columns: string[];
  /** JSON field names or dotted paths with `*` whose values are masked whole: "password", "*.token", "user.ssn". */
  fields: string[];
  /** Default "redact". */
  replacement?: Replacement;
  /** HMAC key for "hash"; default a random per-process key (hashes join within one process only). */
  hashKey?: string | Uint8Array;
}

export interface MaskTextResult {
  text: string;
  /** Number of values replaced. */
  masked: number;
}

export interface Masker {
  /** Detectors over a string; returns the input string itself when nothing matched. */
  maskText(text: string): MaskTextResult;
  /** Detectors over bytes (terminal output, HTTP bodies); undefined when nothing matched. */
  maskBuffer(buf: Buffer): Buffer | undefined;
  /**
   * False when no detector can match buf[start, end), so maskBuffer of those bytes would return
   * undefined: a cheap look at the bytes where they are (no string, no copy), for hot paths that
   * see mostly values with nothing to mask (DataRow cells).
   */
  mayMatch(buf: Uint8Array, start: number, end: number): boolean;
  /** Whether a column rule masks this column whole. Call once per RowDescription, not per row. */
  columnRule(table: string | undefined, column: string): boolean;
  /** The replacement for a value of a column that columnRule said is masked whole. */
  maskWhole(value: string): string;
  /** Set when maskWhole's answer does not depend on the value (redaction), so hot paths need not decode it. */
  readonly wholeConstant?: string;
  /** Column rule → whole replacement; else detectors; undefined = unchanged. */
  maskValue(table: string | undefined, column: string, value: string): string | undefined;
  /** Field rules by key path, detectors on string leaves (and keys); the same object when nothing changed. */
  maskJson(value: unknown): unknown;
}

const FAIL_CLOSED: MaskTextResult = Object.freeze({ text: WHOLE_REDACTION, masked: 1 });
const COLUMN_CACHE_LIMIT = 4096;

/**
 * Compiles a MaskSpec. `detectors` is the table DEFAULT_DETECTORS names are looked up in (tests swap
 * in a broken one to check that masking fails closed). Throws on unknown detector names.
 */
export function compileMasker(spec: MaskSpec, detectors: readonly Detector[] = DEFAULT_DETECTORS): Masker {
  const wanted = new Set<string>(spec.detectors);
  const active = detectors.filter((d) => wanted.has(d.name));
  for (const name of wanted)
    if (!active.some((d) => d.name === name)) throw new Error(`unknown mask detector "${name}"`);
  const findHits = compileFinder(active);
  const precheck = compilePrecheck(active);
  // Whole values (column and field rules) are recognized with every detector, enabled or not.
  const findAny = compileFinder(detectors);
  const recognize = (value: string): Detector | undefined => {
    const hits = findAny(value);
    const h = hits?.length === 1 ? hits[0] : undefined;
    return h && h.start === 0 && h.end === value.length ? h.detector : undefined;
  };
  const replacer = compileReplacer(spec.replacement ?? "redact", spec.hashKey, recognize);
  const replaceHit = (h: Hit, value: string) => replacer.match(h.detector, value);
  const columnRule = compileColumnRules(spec.columns);
  const hasColumnRules = spec.columns.some((c) => c.trim().length > 0);
  const fieldRule = compileFieldRules(spec.fields);
  const columnCache = new Map<string, boolean>();

  function apply(text: string, hits: Hit[]): string {
    const parts: string[] = [];
    let last = 0;
    for (const h of hits) {
      parts.push(text.slice(last, h.start), replacer.match(h.detector, text.slice(h.start, h.end)));
      last = h.end;
    }
    parts.push(text.slice(last));
    return parts.join("");
  }

  function maskText(text: string): MaskTextResult {
    try {
      const hits = findHits(text);
      return hits ? { text: apply(text, hits), masked: hits.length } : { text, masked: 0 };
    } catch {
      return FAIL_CLOSED; // never hand back a value we could not finish checking
    }
  }

  function cachedColumnRule(table: string | undefined, column: string): boolean {
    if (!hasColumnRules) return false;
    const key = `${table ?? ""}\u0000${column}`;
    let hit = columnCache.get(key);
    if (hit === undefined) {
      if (columnCache.size >= COLUMN_CACHE_LIMIT) columnCache.clear();
      hit = columnRule(table, column);
      columnCache.set(key, hit);
    }
    return hit;
  }

  return {
    maskText,
    maskBuffer(buf) {
      try {
        if (buf.length === 0) return undefined;
        const hits = findHits(buf.toString("latin1"), buf);
        return hits && spliceBytes(buf, hits, replaceHit);
      } catch {
        return Buffer.from(WHOLE_REDACTION);
      }
    },
    mayMatch(buf, start, end) {
      try {
        return precheck(buf, start, end);
      } catch {
        return true; // maskBuffer decides, and fails closed
      }
    },
    columnRule: (table, column) => (hasColumnRules ? columnRule(table, column) : false),
    ...(replacer.wholeConstant === undefined ? {} : { wholeConstant: replacer.wholeConstant }),
    maskWhole(value) {
      try {
        return replacer.whole(value);
      } catch {
        return WHOLE_REDACTION;
      }
    },
    maskValue(table, column, value) {
      try {
        if (cachedColumnRule(table, column)) return replacer.whole(value);
        const r = maskText(value);
        return r.masked ? r.text : undefined;
      } catch {
        return WHOLE_REDACTION;
      }
    },
    maskJson(value) {
      try {
        return maskJsonValue(value, [], { maskText, fieldRule, wholeJson: replacer.wholeJson });
      } catch {
        return WHOLE_REDACTION; // e.g. nesting deeper than the stack
      }
    },
  };
}

interface JsonContext {
  maskText(text: string): MaskTextResult;
  fieldRule: ((path: readonly string[]) => boolean) | undefined;
  wholeJson(value: unknown): unknown;
}

/** Copy-on-write walk: containers are copied only on the way up from a change. */
function maskJsonValue(value: unknown, path: string[], ctx: JsonContext): unknown {
  if (typeof value === "string") {
    const r = ctx.maskText(value);
    return r.masked ? r.text : value;
  }
  if (typeof value === "number") {
    // Card numbers stored as JSON numbers: only integers long enough to be one are worth a look.
    if (!Number.isInteger(value) || Math.abs(value) < 1e12) return value;
    const r = ctx.maskText(String(value));
    return r.masked ? r.text : value;
  }
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = maskJsonValue(value[i], path, ctx);
      if (v !== value[i] && !out) out = value.slice(0, i);
      out?.push(v);
    }
    return out ?? value;
  }
  const entries = Object.entries(value);
  let out: Record<string, unknown> | undefined;
  for (let i = 0; i < entries.length; i++) {
    const [key, v] = entries[i]!;
    const r = ctx.maskText(key); // maps keyed by email address leak through their keys otherwise
    const k = r.masked ? r.text : key;
    path.push(key.toLowerCase());
    const masked = ctx.fieldRule?.(path) ? ctx.wholeJson(v) : maskJsonValue(v, path, ctx);
    path.pop();
    if ((masked !== v || k !== key) && !out) {
      out = {};
      for (let j = 0; j < i; j++) setOwn(out, entries[j]![0], entries[j]![1]);
    }
    if (out) setOwn(out, k, masked);
  }
  return out ?? value;
}

/** Plain assignment of "__proto__" would set the prototype instead of copying JSON's own property. */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__")
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}
