import { loadModule, parseSync } from "libpg-query";
import type { SqlCommand, SqlStatement, SqlStatementKind } from "../policy/command.js";

/*
 * SQL analysis over libpg-query's JSON AST (PostgreSQL 18's own grammar, compiled to WASM).
 *
 * The AST is walked generically: node-typed fields arrive wrapped (`{"DeleteStmt": {...}}`), struct-typed
 * fields arrive bare (`relation: {relname, ...}`), so relations are recognised by shape (a `relname`) and
 * everything else is just descended into. Identifiers come out of the parser already case-folded: unquoted
 * names are lower-case, quoted ones keep their case ("My"."T" → My.T), exactly as PostgreSQL resolves them.
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
/** Results are shared through the cache: freeze them (the types stay mutable arrays, as command.ts has them). */
const frozen = <T>(items: T[]): T[] => Object.freeze(items) as T[];

let loaded = false;
let loading: Promise<void> | undefined;

/** Loads the WASM parser once; later calls return at once. */
export async function loadSqlParser(): Promise<void> {
  if (loaded) return;
  loading ??= loadModule().then(() => {
    loaded = true;
  });
  try {
    await loading;
  } catch (err) {
    loading = undefined;
    throw err;
  }
}

// ---- statement kinds ----

const SIMPLE_KINDS: Readonly<Record<string, SqlStatementKind>> = {
  InsertStmt: "insert",
  UpdateStmt: "update",
  DeleteStmt: "delete",
  MergeStmt: "merge",
  TruncateStmt: "truncate",
  CreateStmt: "create_table",
  IndexStmt: "create_index",
  CreateSchemaStmt: "create_schema",
  CreatedbStmt: "create_database",
  DropdbStmt: "drop_database",
  AlterSystemStmt: "alter_system",
  CreateRoleStmt: "create_role",
  AlterRoleStmt: "alter_role",
  AlterRoleSetStmt: "alter_role",
  DropRoleStmt: "drop_role",
  CreateFunctionStmt: "create_function",
  DoStmt: "do",
  CallStmt: "call",
  VariableSetStmt: "set",
  VariableShowStmt: "show",
  ListenStmt: "listen",
  NotifyStmt: "notify",
  ExplainStmt: "explain",
  VacuumStmt: "vacuum",
  PrepareStmt: "prepare",
  ExecuteStmt: "execute",
};

const TRANSACTION_KINDS: Readonly<Record<string, SqlStatementKind>> = {
  TRANS_STMT_BEGIN: "begin",
  TRANS_STMT_START: "begin",
  TRANS_STMT_COMMIT: "commit",
  TRANS_STMT_COMMIT_PREPARED: "commit",
  TRANS_STMT_ROLLBACK: "rollback",
  TRANS_STMT_ROLLBACK_TO: "rollback",
  TRANS_STMT_ROLLBACK_PREPARED: "rollback",
  TRANS_STMT_SAVEPOINT: "savepoint",
  TRANS_STMT_RELEASE: "savepoint",
};

const DROP_KINDS: Readonly<Record<string, SqlStatementKind>> = {
  OBJECT_TABLE: "drop_table",
  OBJECT_SCHEMA: "drop_schema",
  OBJECT_INDEX: "drop_index",
};

/** DROP targets that are relations, reported in tablesWritten. */
const DROPPED_RELATIONS = new Set([
  "OBJECT_TABLE",
  "OBJECT_VIEW",
  "OBJECT_MATVIEW",
  "OBJECT_FOREIGN_TABLE",
  "OBJECT_SEQUENCE",
  "OBJECT_INDEX",
]);

const DDL_KINDS = new Set<SqlStatementKind>([
  "truncate",
  "create_table",
  "alter_table",
  "drop_table",
  "create_index",
  "drop_index",
  "create_schema",
  "drop_schema",
  "create_database",
  "drop_database",
  "alter_system",
  "create_role",
  "alter_role",
  "drop_role",
  "grant",
  "revoke",
  "create_function",
  "ddl_other",
]);

const DDL_NODE =
  /^(?:Create|Alter|Drop|Comment|Rename|SecLabel|Reassign|Define|CompositeType|View|Rule|ImportForeignSchema)/;

function kindOf(node: string, body: Obj): SqlStatementKind {
  const simple = SIMPLE_KINDS[node];
  if (simple) return simple;
  switch (node) {
    case "SelectStmt":
      return body.intoClause ? "create_table" : "select"; // SELECT … INTO creates a table
    case "CopyStmt":
      return body.is_program ? "copy_program" : body.is_from ? "copy_from" : "copy_to";
    case "DropStmt":
      return DROP_KINDS[str(body.removeType) ?? ""] ?? "ddl_other";
    case "GrantStmt":
    case "GrantRoleStmt":
      return body.is_grant ? "grant" : "revoke";
    case "TransactionStmt":
      return TRANSACTION_KINDS[str(body.kind) ?? ""] ?? "other";
    case "AlterTableStmt":
      return body.objtype === "OBJECT_TABLE" ? "alter_table" : "ddl_other";
    case "RenameStmt":
      return body.renameType === "OBJECT_TABLE" || body.relationType === "OBJECT_TABLE" ? "alter_table" : "ddl_other";
    case "AlterObjectSchemaStmt":
      return body.objectType === "OBJECT_TABLE" ? "alter_table" : "ddl_other";
    case "CreateTableAsStmt":
      return body.objtype === "OBJECT_TABLE" ? "create_table" : "ddl_other";
  }
  return DDL_NODE.test(node) ? "ddl_other" : "other";
}

// ---- reads and writes ----

/** Data-modifying statements: wherever they appear below a statement (CTEs, COPY (…)), they become `nested`. */
const DML_NODES = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);
/** Statements whose `query` is reported in `nested` whatever it is. */
const WRAPPING_NODES = new Set(["ExplainStmt", "PrepareStmt"]);
/** Statements whose own relation fields are only read (LOCK, VACUUM, CLUSTER… leave the rows as they are). */
const READING_NODES = new Set([
  "SelectStmt",
  "ExplainStmt",
  "PrepareStmt",
  "DeclareCursorStmt",
  "LockStmt",
  "VacuumStmt",
  "ClusterStmt",
  "ReindexStmt",
]);
/** Fields of a writing statement that name its target relation(s); every other relation is read. */
const WRITE_KEYS = new Set(["relation", "relations", "table", "view", "sequence", "typevar", "rel", "objects"]);
/** Bare struct fields that carry a created relation: IntoClause (SELECT INTO, CREATE TABLE AS), CreateStmt. */
const WRITING_STRUCTS = new Set(["into", "intoClause", "base"]);

function writes(node: string, body: Obj): boolean {
  if (node === "CopyStmt") return body.is_from === true;
  return node.endsWith("Stmt") && !READING_NODES.has(node);
}

/** `{"Name": {...}}` → ["Name", {...}] for node-typed values. */
function unwrap(v: Obj): [string, Obj] | undefined {
  let found: [string, Obj] | undefined;
  for (const key in v) {
    if (found) return undefined;
    const c = key.charCodeAt(0);
    const body = v[key];
    if (c < 65 || c > 90 || !isObj(body)) return undefined;
    found = [key, body];
  }
  return found;
}

function qualifiedName(parts: unknown[]): string {
  const names: string[] = [];
  for (const p of parts) {
    const s = isObj(p) && isObj(p.String) ? str(p.String.sval) : undefined;
    if (s !== undefined) names.push(s);
  }
  return names.join(".");
}

interface Acc {
  read: Set<string>;
  written: Set<string>;
  functions: Set<string>;
  hasWhere: boolean;
  nested: SqlStatement[];
}

class Walker {
  /** CTE names visible at the current point (lexical scope, so `FROM d` naming a CTE is no table read). */
  private readonly ctes: string[] = [];

  constructor(private readonly text: string) {}

  statement(node: string, body: Obj): SqlStatement {
    const acc: Acc = { read: new Set(), written: new Set(), functions: new Set(), hasWhere: true, nested: [] };
    this.node(node, body, acc);
    const kind = kindOf(node, body);
    return Object.freeze({
      kind,
      node,
      ddl: DDL_KINDS.has(kind),
      tablesRead: frozen([...acc.read]),
      tablesWritten: frozen([...acc.written]),
      hasWhere: acc.hasWhere,
      functions: frozen([...acc.functions]),
      nested: frozen(acc.nested),
      text: this.text,
    });
  }

  private node(node: string, body: Obj, acc: Acc): void {
    switch (node) {
      case "RangeVar":
        return this.relation(body, false, acc);
      case "FuncCall":
        if (Array.isArray(body.funcname)) acc.functions.add(qualifiedName(body.funcname));
        break;
      case "UpdateStmt":
      case "DeleteStmt":
        if (!body.whereClause) acc.hasWhere = false;
        break;
      case "DropStmt":
        if (DROPPED_RELATIONS.has(str(body.removeType) ?? "") && Array.isArray(body.objects)) {
          for (const o of body.objects) {
            if (isObj(o) && isObj(o.List) && Array.isArray(o.List.items)) acc.written.add(qualifiedName(o.List.items));
          }
        }
        return;
    }
    this.fields(node, body, writes(node, body), acc);
  }

  private fields(node: string, body: Obj, writer: boolean, acc: Acc): void {
    const scope = this.ctes.length;
    if (isObj(body.withClause)) this.withClause(body.withClause, acc);
    for (const key in body) {
      if (key === "withClause") continue;
      const v = body[key];
      if (key === "funccall" && isObj(v)) this.node("FuncCall", v, acc);
      else if (key === "query" && WRAPPING_NODES.has(node) && isObj(v) && unwrap(v)) this.nest(v, acc);
      else this.value(key, v, writer && WRITE_KEYS.has(key), acc);
    }
    this.ctes.length = scope;
  }

  /** Visits CTE bodies with the names they can see, then leaves every name in scope for the main query. */
  private withClause(w: Obj, acc: Acc): void {
    const ctes = Array.isArray(w.ctes) ? w.ctes : [];
    const names = ctes.map((c) => (isObj(c) && isObj(c.CommonTableExpr) ? (str(c.CommonTableExpr.ctename) ?? "") : ""));
    if (w.recursive) this.ctes.push(...names);
    ctes.forEach((c, i) => {
      this.value("ctes", c, false, acc);
      if (!w.recursive) this.ctes.push(names[i] ?? "");
    });
  }

  private value(key: string, v: unknown, target: boolean, acc: Acc): void {
    if (Array.isArray(v)) {
      for (const item of v) this.value(key, item, target, acc);
      return;
    }
    if (!isObj(v)) return;
    const wrapped = unwrap(v);
    if (wrapped) {
      const [node, body] = wrapped;
      if (node === "RangeVar") this.relation(body, target, acc);
      else if (DML_NODES.has(node)) this.nest(v, acc);
      else this.node(node, body, acc);
    } else if (typeof v.relname === "string") {
      this.relation(v, target, acc);
    } else {
      this.fields("", v, WRITING_STRUCTS.has(key), acc);
    }
  }

  /** A statement inside this one: reported in `nested`, and its tables, functions and WHERE check merged here. */
  private nest(v: Obj, acc: Acc): void {
    const [node, body] = unwrap(v) ?? ["", v];
    const child = this.statement(node, body);
    for (const t of child.tablesRead) acc.read.add(t);
    for (const t of child.tablesWritten) acc.written.add(t);
    for (const f of child.functions) acc.functions.add(f);
    acc.hasWhere &&= child.hasWhere;
    acc.nested.push(child);
  }

  private relation(rv: Obj, written: boolean, acc: Acc): void {
    const relname = str(rv.relname) ?? "";
    const name = [str(rv.catalogname), str(rv.schemaname), relname].filter(Boolean).join(".");
    // A write target is always a real table, even when a CTE has the same name.
    if (written) acc.written.add(name);
    else if (name !== relname || !this.ctes.includes(relname)) acc.read.add(name);
  }
}

// ---- entry point and cache ----

const CACHE_ENTRIES = 1000;
/** Longer texts (bulk INSERTs, generated queries) are analysed every time rather than pinned in memory. */
const CACHE_MAX_TEXT = 16 * 1024;
/*
 * Two-generation LRU approximation: hits in `young` cost one Map lookup (Map delete+set to refresh recency
 * costs ~2 µs at 1000 entries, because V8 keeps compacting the table); entries found in `old` are promoted, and
 * when `young` fills up the untouched rest of `old` is dropped.
 */
let young = new Map<string, SqlCommand>();
let old = new Map<string, SqlCommand>();

function remember(text: string, result: SqlCommand): void {
  young.set(text, result);
  if (young.size >= CACHE_ENTRIES / 2) {
    old = young;
    young = new Map();
  }
}

/*
 * Statements that differ only in integer literals (`… WHERE id = 42`, the shape of most generated
 * queries and of pgbench -S) analyse the same: the walker never reads a constant's value, and the
 * lexer makes every integer of at most 9 digits the same token (ICONST), so the grammar cannot take
 * another path for another value. Such texts share one analysis under their shape, the text with
 * each of those literals written as 0. Only single statements qualify (their own text is the whole
 * input, so it can be swapped in), and only texts with nothing the shape could misread: no quotes of
 * any kind, no `$`, backslash, comment or non-ASCII character.
 */
let youngShapes = new Map<string, SqlStatement>();
let oldShapes = new Map<string, SqlStatement>();

function rememberShape(shape: string, statement: SqlStatement): void {
  youngShapes.set(shape, statement);
  if (youngShapes.size >= CACHE_ENTRIES / 2) {
    oldShapes = youngShapes;
    youngShapes = new Map();
  }
}

/** Parses one simple-query text (one or more statements). Never throws for bad SQL: see `parseError`. */
export function analyzeSql(text: string): SqlCommand {
  if (!loaded) throw new Error("SQL parser not loaded: await loadSqlParser() first");
  const hit = young.get(text);
  if (hit) return hit;
  const older = old.get(text);
  if (older) {
    remember(text, older);
    return older;
  }
  if (text.length > CACHE_MAX_TEXT) return analyzeUncached(text);
  const shape = literalShape(text);
  if (shape !== undefined) {
    let statement = youngShapes.get(shape);
    if (!statement && (statement = oldShapes.get(shape))) rememberShape(shape, statement);
    if (statement) {
      const own = Object.freeze({ ...statement, text: ownText(text) });
      return Object.freeze({ protocol: "sql", statements: frozen([own]), text });
    }
  }
  const result = analyzeUncached(text);
  remember(text, result);
  const only = result.statements.length === 1 ? result.statements[0]! : undefined;
  if (shape !== undefined && only && !result.parseError && only.nested.length === 0 && only.text === ownText(text)) {
    rememberShape(shape, only);
  }
  return result;
}

/** A single statement's own text as the parser slices it: the input without its terminating `;` and blanks. */
function ownText(text: string): string {
  let end = text.length;
  for (;;) {
    const c = text.charCodeAt(end - 1);
    if (c === SEMICOLON || c === 32 || (c >= 9 && c <= 13)) end--;
    else break;
  }
  return text.slice(0, end).trim();
}

const MAX_SHAPED_DIGITS = 9;

/**
 * `text` with every integer literal of at most MAX_SHAPED_DIGITS digits written as 0; undefined when it
 * has none, or holds a character after which digits might not be an integer literal (see above).
 */
export function literalShape(text: string): string | undefined {
  const n = text.length;
  let parts: string[] | undefined;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 126 || c === QUOTE || c === DOUBLE_QUOTE || c === DOLLAR || c === BACKSLASH || c === BACKTICK) {
      return undefined;
    }
    const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
    if ((c === DASH && next === DASH) || (c === SLASH && next === STAR)) return undefined;
    if (!isDigit(c)) continue;
    let j = i + 1;
    while (j < n && isDigit(text.charCodeAt(j))) j++;
    // A run inside a name (t1), a number (1.5, 1e5, 0x1F, 1_000) or too long for ICONST stays as it is.
    const literal = j - i <= MAX_SHAPED_DIGITS && !joins(text.charCodeAt(i - 1)) && !joins(text.charCodeAt(j));
    if (literal) {
      (parts ??= []).push(text.slice(kept, i), "0");
      kept = j;
    }
    i = j - 1;
  }
  if (!parts) return undefined;
  parts.push(text.slice(kept));
  return parts.join("");
}

const SEMICOLON = 59;
const QUOTE = 39;
const DOUBLE_QUOTE = 34;
const DOLLAR = 36;
const BACKSLASH = 92;
const BACKTICK = 96;
const DASH = 45;
const SLASH = 47;
const STAR = 42;
const isDigit = (c: number) => c >= 48 && c <= 57;
/** Characters that make digits next to them part of a longer token (NaN past either end: none). */
const joins = (c: number) =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46 || c === 36;

/** The parser's own analysis, past every cache: for tests that check the caches against it. */
export function analyzeUncached(text: string): SqlCommand {
  const statements: SqlStatement[] = [];
  try {
    const raws = text.trim() === "" ? [] : (parseSync(text) as unknown as { stmts?: unknown }).stmts;
    const slice = sliceByBytes(text);
    for (const raw of Array.isArray(raws) ? raws : []) {
      const wrapped = isObj(raw) && isObj(raw.stmt) ? unwrap(raw.stmt) : undefined;
      if (!wrapped || !isObj(raw)) throw new Error("unexpected parser output");
      const start = typeof raw.stmt_location === "number" ? raw.stmt_location : 0;
      const len = typeof raw.stmt_len === "number" && raw.stmt_len > 0 ? raw.stmt_len : undefined;
      statements.push(new Walker(slice(start, len).trim()).statement(wrapped[0], wrapped[1]));
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // RangeError: an AST deeper than the JS stack (e.g. tens of thousands of chained operators).
    const parseError = err instanceof RangeError ? `statement too deeply nested to analyze (${message})` : message;
    return Object.freeze({ protocol: "sql", statements: frozen<SqlStatement>([]), parseError, text });
  }
  return Object.freeze({ protocol: "sql", statements: frozen(statements), text });
}

/** libpg-query reports statement offsets in UTF-8 bytes. */
function sliceByBytes(text: string): (start: number, len: number | undefined) => string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length === text.length)
    return (start, len) => text.slice(start, len === undefined ? undefined : start + len);
  return (start, len) => bytes.subarray(start, len === undefined ? undefined : start + len).toString("utf8");
}
