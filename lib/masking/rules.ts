// Column and JSON field rules: which values are masked whole, whatever they contain. Names compare
// case-insensitively (PostgreSQL folds unquoted identifiers, APIs disagree on key case), which errs
// on the side of masking.

/** `*` matches any run of characters (also none), `?` one character; all else is literal. */
function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "is");
}

type Segment = string | RegExp;

function segment(glob: string): Segment {
  return /[*?]/.test(glob) ? globToRegExp(glob) : glob.toLowerCase();
}

function segmentMatches(seg: Segment, name: string): boolean {
  return typeof seg === "string" ? seg === name : seg.test(name);
}

/**
 * Column globs: `users.email`, `*.password`, `public.users.ssn`, or a bare `ssn` (any table). A pattern
 * splits at its last dot into table and column; the table part matches a schema-qualified table name
 * either in full or by its unqualified name. A column with no table (an expression, or an OID the
 * engine could not resolve) is matched only by bare patterns and by table `*`.
 */
export function compileColumnRules(
  patterns: readonly string[],
): (table: string | undefined, column: string) => boolean {
  const rules = patterns
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((p) => {
      const dot = p.lastIndexOf(".");
      return dot < 0
        ? { table: undefined, column: segment(p) }
        : { table: segment(p.slice(0, dot)), column: segment(p.slice(dot + 1)) };
    });
  if (rules.length === 0) return () => false;
  return (table, column) => {
    const col = column.toLowerCase();
    const full = (table ?? "").toLowerCase();
    const short = full.slice(full.lastIndexOf(".") + 1);
    return rules.some(
      (r) =>
        segmentMatches(r.column, col) &&
        (r.table === undefined || segmentMatches(r.table, full) || segmentMatches(r.table, short)),
    );
  };
}

/**
 * JSON field rules: a key name (`password`) or a dotted path (`user.ssn`, `*.token`), where `*` as a
 * segment is any one key and globs work inside segments (`*_token`). A rule matches the end of a
 * value's key path, so `password` is that key at any depth and `user.ssn` is `ssn` directly under any
 * `user` object. Array indices are not path segments: `users.ssn` covers `{"users": [{"ssn": …}]}`.
 * Takes the path as lowercased keys; returns undefined when there are no rules.
 */
export function compileFieldRules(patterns: readonly string[]): ((path: readonly string[]) => boolean) | undefined {
  const rules = patterns
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((p) => p.split(".").map(segment));
  if (rules.length === 0) return undefined;
  // Most keys are not the last segment of any rule: rule that out with one Set lookup.
  const lastExact = new Set<string>();
  let lastWild = false;
  for (const r of rules) {
    const last = r[r.length - 1]!;
    if (typeof last === "string") lastExact.add(last);
    else lastWild = true;
  }
  return (path) => {
    const key = path[path.length - 1];
    if (key === undefined || (!lastWild && !lastExact.has(key))) return false;
    return rules.some((r) => {
      if (r.length > path.length) return false;
      for (let i = 1; i <= r.length; i++) if (!segmentMatches(r[r.length - i]!, path[path.length - i]!)) return false;
      return true;
    });
  };
}
