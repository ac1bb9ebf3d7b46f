import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Command, ShellCommand, SqlCommand, SqlStatement } from "./command.js";
import { compilePolicy, type PolicyConnection } from "./compile.js";
import { evaluate, preparePolicy, UNPARSEABLE_RULE } from "./evaluate.js";
import { loadPolicies, parsePolicyFile, PolicyError } from "./load.js";

const stmt = (kind: SqlStatement["kind"], extra: Partial<SqlStatement> = {}): SqlStatement => ({
  kind,
  node: "X",
  ddl: false,
  tablesRead: [],
  tablesWritten: [],
  hasWhere: true,
  functions: [],
  nested: [],
  text: kind,
  ...extra,
});
const sql = (...statements: SqlStatement[]): SqlCommand => ({ protocol: "sql", statements, text: "…" });
const shell = (...argvs: string[][]): ShellCommand => ({
  protocol: "shell",
  commands: argvs.map((argv) => ({ argv, env: {} })),
  text: argvs.map((a) => a.join(" ")).join("; "),
});
const k8s = (verb: string, resource: string, namespace?: string, name?: string): Command => ({
  protocol: "http",
  method: "DELETE",
  path: "/x",
  query: "",
  kubernetes: { verb, resource, group: "", namespace, name },
  text: "…",
});

const pgProd: PolicyConnection = { name: "pg-prod", type: "postgres", labels: { env: "prod" }, segment: "eu-1" };
const pgDev: PolicyConnection = { name: "pg-dev", type: "postgres", labels: { env: "dev" }, segment: "eu-1" };

function policyError(fn: () => unknown): PolicyError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return err;
  }
  assert.fail("no PolicyError");
}

describe("policy loader", () => {
  it("names file and line for YAML errors, schema errors and semantic errors", () => {
    assert.match(
      policyError(() => parsePolicyFile("policies:\n  - name: a\n    match: [\n", "p.yaml")).message,
      /^p\.yaml:[34]: /,
    );
    const unknown = policyError(() => parsePolicyFile("policies:\n  - name: a\n    conect: true\n", "p.yaml"));
    assert.equal(unknown.message, "p.yaml:3: policies[0].conect: unknown key");
    const kind = policyError(() =>
      parsePolicyFile(
        "policies:\n  - name: a\n    rules:\n      - name: r\n        effect: deny\n        sql: { statements: [drop_everything] }\n",
        "p.yaml",
      ),
    );
    assert.equal(kind.line, 6);
    assert.match(kind.message, /unknown statement kind "drop_everything"/);
    const review = policyError(() =>
      parsePolicyFile("policies:\n  - name: a\n    rules:\n      - name: r\n        effect: review\n", "p.yaml"),
    );
    assert.match(review.message, /^p\.yaml:5: .*effect review needs approvers/);
    const two = policyError(() =>
      parsePolicyFile(
        "policies:\n  - name: a\n    rules:\n      - name: r\n        effect: deny\n        sql: {ddl: true}\n        shell: {commands: [rm]}\n",
        "p.yaml",
      ),
    );
    assert.match(two.message, /a rule matches one protocol/);
    const detector = policyError(() =>
      parsePolicyFile(
        "policies:\n  - name: a\n    rules:\n      - name: r\n        effect: mask\n        mask:\n          detectors: [email, ssn_us]\n",
        "p.yaml",
      ),
    );
    assert.equal(detector.line, 7);
    assert.match(detector.message, /unknown detector "ssn_us" \(known: .*national_id/);
    const effect = policyError(() =>
      parsePolicyFile("policies:\n  - name: a\n    rules:\n      - name: r\n        effect: maybe\n", "p.yaml"),
    );
    assert.equal(
      effect.message,
      'p.yaml:5: policies[0].rules[0].effect: expected one of allow, deny, review, mask (got "maybe")',
    );
  });

  it("refuses the same policy name in two files", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-pol-"));
    try {
      writeFileSync(join(dir, "a.yaml"), "policies:\n  - name: same\n");
      writeFileSync(join(dir, "b.yaml"), "policies:\n  - name: other\n  - name: same\n");
      const err = policyError(() => loadPolicies([join(dir, "*.yaml")]));
      assert.match(err.message, /b\.yaml:3: policy "same" is already defined at .*a\.yaml:2/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("loads the shipped default policy", () => {
    const set = loadPolicies(["policies/default.yaml"]);
    assert.deepEqual(
      set.policies.map((p) => p.name),
      ["admins", "baseline", "production"],
    );
  });
});

describe("policy compiler and evaluator (default policy)", () => {
  const set = loadPolicies(["policies/default.yaml"]);
  const dba = { subject: "alice", groups: ["dba"] };
  const admin = { subject: "root", groups: ["vigil-admins"] };

  it("grants connect by group, and nothing without a grant", () => {
    assert.equal(compilePolicy(set, admin, pgProd).connect, true);
    assert.deepEqual(compilePolicy(set, admin, pgProd).grantedBy, ["admins"]);
    assert.equal(compilePolicy(set, dba, pgProd).connect, false);
  });

  it("keeps only the rules a connection type can meet", () => {
    const rules = compilePolicy(set, admin, pgProd).rules.map((r) => r.id);
    assert.ok(rules.includes("baseline/no-drop-database"));
    assert.ok(!rules.includes("baseline/no-recursive-delete-of-root"));
    assert.ok(rules.includes("baseline/mask-sensitive-data"));
    const tcp = compilePolicy(set, admin, { ...pgProd, type: "tcp" }).rules.map((r) => r.id);
    assert.deepEqual(tcp, ["baseline/mask-sensitive-data"]);
  });

  it("denies, reviews and allows SQL as the default policy says", () => {
    const prod = preparePolicy(compilePolicy(set, admin, pgProd));
    const dev = preparePolicy(compilePolicy(set, admin, pgDev));
    assert.deepEqual(evaluate(prod, sql(stmt("drop_database"))), {
      effect: "deny",
      rule: "baseline/no-drop-database",
      reason: "denied by baseline/no-drop-database",
    });
    const unbounded = evaluate(prod, sql(stmt("delete", { hasWhere: false })));
    assert.equal(unbounded.effect, "review");
    assert.equal(unbounded.effect === "review" && unbounded.approvers.timeoutMs, 15 * 60 * 1000);
    assert.equal(evaluate(dev, sql(stmt("delete", { hasWhere: false }))).effect, "allow");
    assert.equal(evaluate(prod, sql(stmt("delete"))).effect, "allow");
    // A nested DELETE without WHERE inside a SELECT (WITH … DELETE) is still seen.
    assert.equal(
      evaluate(prod, sql(stmt("select", { nested: [stmt("delete", { hasWhere: false })] }))).effect,
      "review",
    );
    // Deny overrides review in one multi-statement command.
    assert.equal(
      evaluate(prod, sql(stmt("delete", { hasWhere: false }), stmt("truncate", { ddl: true }))).effect,
      "deny",
    );
    assert.equal(evaluate(prod, sql(stmt("select", { functions: ["pg_catalog.pg_read_file"] }))).effect, "deny");
    assert.deepEqual(evaluate(prod, { protocol: "sql", statements: [], parseError: "syntax error", text: "selec" }), {
      effect: "deny",
      rule: UNPARSEABLE_RULE,
      reason: "command could not be parsed: syntax error",
    });
  });

  it("carries the mask plan on allowed commands", () => {
    const d = evaluate(preparePolicy(compilePolicy(set, admin, pgDev)), sql(stmt("select")));
    assert.equal(d.effect, "allow");
    assert.ok(
      d.effect === "allow" && d.masks.live.detectors.includes("card") && d.masks.record.columns.includes("*.password"),
    );
  });

  it("matches shell flags and arguments, not substrings", () => {
    const ssh = preparePolicy(compilePolicy(set, admin, { ...pgDev, type: "ssh" }));
    for (const argv of [
      ["rm", "-rf", "/"],
      ["rm", "-r", "-f", "/"],
      ["/bin/rm", "--recursive", "--force", "/"],
      ["rm", "-fR", "/etc"],
    ]) {
      assert.equal(evaluate(ssh, shell(argv)).effect, "deny", argv.join(" "));
    }
    assert.equal(evaluate(ssh, shell(["rm", "-rf", "/tmp/build"])).effect, "allow");
    assert.equal(evaluate(ssh, shell(["rm", "-rf", "/*"])).effect, "deny"); // what sh -c 'rm -rf /*' passes
    assert.equal(evaluate(ssh, shell(["rm", "/"])).effect, "allow"); // not recursive: rm refuses a directory anyway
    assert.equal(evaluate(ssh, shell(["echo", "rm", "-rf", "/"])).effect, "allow");
    assert.equal(evaluate(ssh, shell(["rm", "-rf", "--", "/"])).effect, "deny");
    assert.equal(evaluate(ssh, shell(["dd", "if=/dev/zero", "of=/dev/sda"])).effect, "deny");
    const hidden = evaluate(ssh, shell(["$X", "-rf", "/"]));
    assert.deepEqual(hidden, {
      effect: "deny",
      rule: UNPARSEABLE_RULE,
      reason: 'the program name "$X" depends on shell expansion',
    });
    const http = evaluate(preparePolicy(compilePolicy(set, admin, { ...pgDev, type: "http" })), {
      protocol: "http",
      method: "GET",
      path: "/a%2Fb",
      query: "",
      parseError: "encoded slash",
      text: "GET /a%2Fb",
    });
    assert.equal(http.effect, "deny");
  });

  it("reviews or denies Kubernetes requests by verb and resource", () => {
    const kube = preparePolicy(compilePolicy(set, admin, { ...pgProd, type: "kubernetes" }));
    assert.equal(evaluate(kube, k8s("delete", "nodes", undefined, "n1")).effect, "deny");
    assert.equal(evaluate(kube, k8s("delete", "namespaces", undefined, "prod")).effect, "deny");
    assert.equal(evaluate(kube, k8s("delete", "pods", "default", "p1")).effect, "review");
    assert.equal(evaluate(kube, k8s("get", "pods", "default")).effect, "allow");
  });
});
