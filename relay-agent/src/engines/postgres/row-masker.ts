import { compileMasker, type Masker } from "../../../../lib/masking/index.js";
import type { MaskTargets } from "../../../../lib/policy/evaluate.js";
import type { RowField } from "../../../../lib/pgwire/backend.js";

/** What happens to one column's values. */
const enum Action {
  Keep,
  /** A column rule masks it whole (text, or binary of a text-like type). */
  Whole,
  /** Detectors scan it (text, or binary of a text-like type). */
  Scan,
  /** A column rule masks a binary value of a non-text type: it cannot be rewritten in place, so NULL. */
  Null,
}

/**
 * Types whose binary send format is the text itself (text, varchar, bpchar, name, json, xml,
 * unknown, char), so they can be masked like text; jsonb's binary form is a version byte then text.
 */
const TEXT_LIKE_BINARY = new Set([25, 1043, 1042, 19, 114, 142, 705, 18]);
const JSONB = 3802;

/**
 * Masks DataRows of one result set: the per-column plan is worked out once, at RowDescription, and
 * a row with nothing to mask is passed through untouched (`undefined`).
 */
export class RowMasker {
  private readonly actions: Action[];
  /**
   * How many of a row's values a mask can apply to: the walk of a row stops after the last of them,
   * and what follows goes on as the target sent it (as the values of a row with nothing masked do).
   */
  private readonly columnsToRead: number;
  readonly active: boolean;
  /** The bytes of a whole-value replacement that is the same for every value (not for jsonb in binary). */
  private readonly constant: Buffer | undefined;

  constructor(
    private readonly masker: Masker,
    private readonly fields: readonly RowField[],
    tableOf: (oid: number) => string | undefined,
    scan: boolean,
  ) {
    this.actions = fields.map((f) => {
      const textual = f.format === 0 || TEXT_LIKE_BINARY.has(f.typeOid) || f.typeOid === JSONB;
      if (masker.columnRule(f.tableOid ? tableOf(f.tableOid) : undefined, f.name)) {
        return textual ? Action.Whole : Action.Null;
      }
      return scan && textual ? Action.Scan : Action.Keep;
    });
    this.active = this.actions.some((a) => a !== Action.Keep);
    this.columnsToRead = this.actions.findLastIndex((a) => a !== Action.Keep) + 1;
    const binaryJsonb = fields.some((f) => f.format === 1 && f.typeOid === JSONB);
    this.constant = masker.wholeConstant === undefined || binaryJsonb ? undefined : utf8(masker.wholeConstant);
  }

  /**
   * Mask a DataRow's body, rewriting only the masked values: a new DataRow message, or undefined
   * when no value changed (the target's message is forwarded as it came). A value that runs past
   * the message throws rather than pass unmasked.
   */
  maskRow(body: Buffer): Buffer | undefined {
    const size = body.length;
    const edits = this.plan(body, 0, size);
    if (edits === 0) return undefined;
    const { grow, room } = this;
    // One allocation and one copy of the whole body behind the message header; then each edit, left
    // to right, moves what follows the value (copyWithin: no views made) and writes the replacement.
    const out = Buffer.allocUnsafe(5 + size + room);
    const length = 4 + size + grow;
    out[0] = 0x44;
    out[1] = length >>> 24;
    out[2] = (length >>> 16) & 0xff;
    out[3] = (length >>> 8) & 0xff;
    out[4] = length & 0xff;
    out.set(body, 5);
    const { editFrom, editTo, editValue } = this;
    let shift = 5;
    for (let e = 0; e < edits; e++) {
      const value = editValue[e]!;
      editValue[e] = null;
      const at = editFrom[e]! + shift;
      const end = editTo[e]! + shift;
      const newEnd = at + 4 + (value?.length ?? 0);
      if (newEnd !== end) out.copyWithin(newEnd, end, size + shift);
      writeLength(out, at, value);
      if (value) out.set(value, at + 4);
      shift += newEnd - end;
    }
    return room === grow ? out : out.subarray(0, 5 + size + grow);
  }

  /**
   * Mask a run of whole DataRow messages lying back to back in `chunk[start, end)` (what one socket
   * read brought): the run's messages with masked values rewritten, as one buffer (a slice of
   * `chunk` when nothing changed). At the first edit the run is copied once, then compacted in place
   * left to right (copyWithin over each stretch of kept bytes, no view or allocation per row); each
   * row's edits are worked out from `chunk`, which is never written. A malformed row throws.
   */
  maskRun(chunk: Buffer, start: number, end: number): Buffer {
    let out: Buffer | undefined;
    let headroom = 0;
    // Input byte p of chunk sits at out[p + delta] until it is moved; w is where output goes next;
    // rows from `keep` on are unchanged and not moved yet.
    let delta = 0;
    let w = 0;
    let keep = start;
    const { editFrom, editTo, editValue } = this;
    for (let r = start; r < end;) {
      const length = ((chunk[r + 1]! << 24) | (chunk[r + 2]! << 16) | (chunk[r + 3]! << 8) | chunk[r + 4]!) >>> 0;
      const next = r + 1 + length;
      const edits = this.plan(chunk, r + 5, next);
      if (edits === 0) {
        r = next;
        continue;
      }
      if (!out) {
        // Room in front of the copy for replacements longer than what they replace.
        headroom = 64 + ((end - start) >>> 4);
        out = Buffer.allocUnsafe(headroom + end - start);
        out.set(chunk.subarray(start, end), headroom);
        delta = headroom - start;
      }
      if (keep !== r) {
        if (w !== keep + delta) out.copyWithin(w, keep + delta, r + delta);
        w += r - keep;
      }
      // Output must never overtake input not yet moved: w - (r + delta) + room <= 0.
      if (w + this.room > r + delta) {
        const left = end - r;
        headroom = Math.max(2 * headroom, this.room + 64 + (left >>> 4));
        const bigger = Buffer.allocUnsafe(w + headroom + left);
        out.copy(bigger, 0, 0, w);
        out.copy(bigger, w + headroom, r + delta, end + delta);
        out = bigger;
        delta = w + headroom - r;
      }
      // The header moves with the values before the first edit; its length word is written after.
      const head = w;
      let from = r;
      for (let e = 0; e < edits; e++) {
        const value = editValue[e]!;
        editValue[e] = null;
        const at = editFrom[e]!;
        if (at !== from) out.copyWithin(w, from + delta, at + delta);
        w += at - from;
        writeLength(out, w, value);
        w += 4;
        if (value) {
          out.set(value, w);
          w += value.length;
        }
        from = editTo[e]!;
      }
      if (from !== next) out.copyWithin(w, from + delta, next + delta);
      w += next - from;
      const newLength = length + this.grow;
      out[head + 1] = newLength >>> 24;
      out[head + 2] = (newLength >>> 16) & 0xff;
      out[head + 3] = (newLength >>> 8) & 0xff;
      out[head + 4] = newLength & 0xff;
      r = keep = next;
    }
    if (!out) return chunk.subarray(start, end);
    if (keep !== end) {
      if (w !== keep + delta) out.copyWithin(w, keep + delta, end + delta);
      w += end - keep;
    }
    return w === out.length ? out : out.subarray(0, w);
  }

  /**
   * Work out the edits of the DataRow body `buf[start, end)`: how many, in editFrom (start of the
   * value's length word), editTo (end of the value) and editValue (replacement or null), with the
   * row's size change in `grow` and its highest point so far in `room`.
   */
  private plan(buf: Buffer, start: number, end: number): number {
    // Runs once per row: lengths are read by hand and fields kept in locals (no Buffer method calls).
    if (end - start < 2) throw new RangeError("DataRow too short for its column count");
    const n = Math.min((buf[start]! << 8) | buf[start + 1]!, this.columnsToRead);
    const actions = this.actions;
    const masker = this.masker;
    const { editFrom, editTo, editValue } = this;
    let pos = start + 2;
    let edits = 0;
    let grow = 0;
    let room = 0;
    for (let i = 0; i < n; i++) {
      const from = pos;
      if (pos + 4 > end) throw new RangeError("DataRow value length runs past the message");
      const len = (buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!;
      pos += 4;
      if (len < 0) continue;
      const to = pos + len;
      if (to > end) throw new RangeError("DataRow value runs past the message");
      const action = actions[i]!;
      // Most scanned values hold nothing a detector could match: judged in place, no view made.
      if (action === Action.Keep || (action === Action.Scan && !masker.mayMatch(buf, pos, to))) {
        pos = to;
        continue;
      }
      let next: Buffer | null;
      if (action === Action.Whole && this.constant) {
        // Redaction does not depend on the value: no view of it, no decoding.
        next = this.constant;
      } else {
        const value = buf.subarray(pos, to);
        next = action === Action.Null ? null : this.maskOne(value, action, this.fields[i]!);
        if (next === value) {
          pos = to;
          continue;
        }
      }
      pos = to;
      editFrom[edits] = from;
      editTo[edits] = to;
      editValue[edits++] = next;
      grow += (next?.length ?? 0) - len;
      if (grow > room) room = grow;
    }
    this.grow = grow;
    this.room = room;
    return edits;
  }

  private grow = 0;
  private room = 0;

  /** One row's edits, reused from row to row (maskRow is synchronous). */
  private readonly editFrom: number[] = [];
  private readonly editTo: number[] = [];
  private readonly editValue: (Buffer | null)[] = [];

  private lastWhole = "";
  private lastWholeBytes = Buffer.alloc(0);

  /** Whole-value replacements repeat (redaction is one constant): encode each once. */
  private whole(text: string): Buffer {
    if (text !== this.lastWhole) {
      this.lastWhole = text;
      this.lastWholeBytes = Buffer.from(text, "utf8");
    }
    return this.lastWholeBytes;
  }

  private maskOne(v: Buffer, action: Action, field: RowField): Buffer {
    const jsonbPrefix = field.format === 1 && field.typeOid === JSONB ? v.subarray(0, 1) : undefined;
    const body = jsonbPrefix ? v.subarray(1) : v;
    let masked: Buffer | undefined;
    if (action === Action.Whole) masked = this.whole(this.masker.maskWhole(body.toString("utf8")));
    else masked = this.masker.maskBuffer(body);
    if (!masked) return v;
    return jsonbPrefix ? Buffer.concat([jsonbPrefix, masked]) : masked;
  }
}

function writeLength(out: Buffer, at: number, value: Buffer | null): void {
  const len = value === null ? -1 : value.length;
  out[at] = len >>> 24;
  out[at + 1] = (len >>> 16) & 0xff;
  out[at + 2] = (len >>> 8) & 0xff;
  out[at + 3] = len & 0xff;
}

/** Whole-value placeholders are few constants: encoded once each, not once per result set. */
const placeholders = new Map<string, Buffer>();
function utf8(text: string): Buffer {
  let bytes = placeholders.get(text);
  if (!bytes) placeholders.set(text, (bytes = Buffer.from(text, "utf8")));
  return bytes;
}

/** Maskers by mask targets: policies produce few distinct plans, and compiling one is not free. */
export class MaskerCache {
  private readonly cache = new Map<string, Masker | undefined>();
  /**
   * By the targets object itself: most statements get the policy's base masks, the same object each
   * time (a policy's mask plans are never changed once made), found without building the key.
   */
  private readonly byTargets = new WeakMap<MaskTargets, Masker | null>();

  get(t: MaskTargets): Masker | undefined {
    const known = this.byTargets.get(t);
    if (known !== undefined) return known ?? undefined;
    const masker = this.compiled(t);
    this.byTargets.set(t, masker ?? null);
    return masker;
  }

  private compiled(t: MaskTargets): Masker | undefined {
    if (t.detectors.length === 0 && t.columns.length === 0) return undefined;
    const key = `${t.detectors.join(",")}|${t.columns.join(",")}`;
    if (!this.cache.has(key)) {
      this.cache.set(key, compileMasker({ detectors: t.detectors as never[], columns: t.columns, fields: t.fields }));
    }
    return this.cache.get(key);
  }
}
