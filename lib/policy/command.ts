/**
 * A command as the policy evaluator sees it: parsed once by the protocol engine (or `vigil policy
 * test`), then matched against compiled rules with no further parsing.
 */
export type Command = SqlCommand | ShellCommand | SshForwardCommand | SshEnvCommand | HttpCommand;

// ---- SQL (PostgreSQL, parsed by libpg-query) ----

/** Statement kinds, in snake case: the policy language names these. */
export const SQL_STATEMENT_KINDS = [
  "select",
  "insert",
  "update",
  "delete",
  "merge",
  "truncate",
  "copy_from",
  "copy_to",
  "copy_program",
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
  "do",
  "call",
  "set",
  "show",
  "begin",
  "commit",
  "rollback",
  "savepoint",
  "listen",
  "notify",
  "explain",
  "vacuum",
  "prepare",
  "execute",
  "ddl_other",
  "other",
] as const;

export type SqlStatementKind = (typeof SQL_STATEMENT_KINDS)[number];

export interface SqlStatement {
  kind: SqlStatementKind;
  /** The libpg-query node name (e.g. "DeleteStmt"), for messages and for rules that need it. */
  node: string;
  /** True for DDL: CREATE/ALTER/DROP of any object, TRUNCATE, GRANT/REVOKE, ALTER SYSTEM, CREATE FUNCTION. */
  ddl: boolean;
  /** Relations read and written, lower-case, schema-qualified when written so ("public.users" or "users"). */
  tablesRead: string[];
  tablesWritten: string[];
  /** For UPDATE/DELETE (including ones nested in CTEs): false when any of them has no WHERE clause. */
  hasWhere: boolean;
  /** Functions called anywhere in the statement, lower-case, schema-qualified when written so. */
  functions: string[];
  /** Statements nested in this one that policy must also see (DML inside WITH, EXPLAIN ANALYZE's target). */
  nested: SqlStatement[];
  /** The statement's own text (from the multi-statement input). */
  text: string;
}

export interface SqlCommand {
  protocol: "sql";
  /** Every top-level statement of the input, in order. */
  statements: SqlStatement[];
  /** Set when the input did not parse: policy denies unparseable SQL by default. */
  parseError?: string;
  text: string;
}

// ---- Shell (SSH exec and interactive lines) ----

/** One simple command of a command line: `FOO=1 rm -rf /tmp/x` → argv ["rm","-rf","/tmp/x"], env {FOO:"1"}. */
export interface ShellSimpleCommand {
  argv: string[];
  env: Record<string, string>;
}

export interface ShellCommand {
  protocol: "shell";
  /**
   * Every simple command the line would run, flattened across pipelines, `&&`, `||`, `;`, subshells,
   * and `sh -c` / `bash -c` strings (parsed recursively).
   */
  commands: ShellSimpleCommand[];
  /** Set when quoting is unbalanced or the line cannot be split: policy treats it as unknown. */
  parseError?: string;
  text: string;
}

// ---- SSH port forwarding ----

/** `ssh -L` (local: the relay connects from the target's side to host:port) or `ssh -R` (remote: the target listens). */
export interface SshForwardCommand {
  protocol: "ssh-forward";
  direction: "local" | "remote";
  host: string;
  port: number;
  parseError?: undefined;
  text: string;
}

/** An environment variable the client asks to set on the target (`ssh -o SetEnv`, `SendEnv`). */
export interface SshEnvCommand {
  protocol: "ssh-env";
  name: string;
  parseError?: undefined;
  /** `env NAME=value`. */
  text: string;
}

// ---- HTTP and Kubernetes ----

export interface KubernetesRequest {
  /** get, list, watch, create, update, patch, delete, deletecollection, proxy, connect… */
  verb: string;
  /** Plural resource ("pods", "nodes", "namespaces"), with the subresource as "pods/exec". */
  resource: string;
  /** API group ("" for core, "apps", …). */
  group: string;
  namespace?: string;
  name?: string;
}

export interface HttpCommand {
  protocol: "http";
  method: string;
  /** Path without the query string, percent-decoded and normalized (no "..", no "//"). */
  path: string;
  query: string;
  /** Present when the path is a Kubernetes API path (/api/…, /apis/…). */
  kubernetes?: KubernetesRequest;
  /**
   * Set when the path is ambiguous to the server behind (an encoded slash %2F, an encoded control character,
   * invalid percent-encoding or UTF-8): policy should deny, as for unparseable SQL and shell.
   */
  parseError?: string;
  text: string;
}
