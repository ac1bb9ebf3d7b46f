const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parse "90s", "30m", "1h", "7d" (or a bare number of seconds) into seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (!m) throw new Error(`expected a duration like 30m, 1h or 7d, got "${value}"`);
  const seconds = Number(m[1]) * UNITS[m[2] || "s"]!;
  if (seconds <= 0) throw new Error(`duration must be positive, got "${value}"`);
  return seconds;
}

/** Milliseconds as the largest whole unit that fits: 6000 → "6s", 1800000 → "30m", 7200000 → "2h". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  for (const [unit, size] of [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
  ] as const)
    if (s >= size && s % size === 0) return `${s / size}${unit}`;
  return s >= 60 ? `${Math.round(s / 60)}m` : `${s}s`;
}
