import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { PolicyStore } from "./store.js";

const ONE = "policies:\n  - name: one\n    connect: true\n";

describe("PolicyStore.reload", () => {
  let dir: string;
  let file: string;
  let logs: { level: number; msg: string; err?: string; file?: string }[];
  let store: PolicyStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "vigil-policy-store-"));
    file = join(dir, "a.yaml");
    writeFileSync(file, ONE);
    logs = [];
    const log = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line) as never) });
    store = new PolicyStore([join(dir, "*.yaml")], log);
  });

  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const names = () => store.current.policies.map((p) => p.name);

  it("keeps the last good policies when a file is caught empty, and says which file", () => {
    writeFileSync(file, "  \n");
    assert.equal(store.reload("test"), false);
    assert.deepEqual(names(), ["one"]);
    assert.ok(logs.some((l) => l.level === 40 && l.file === file && /policy file is empty/.test(l.msg)));
  });

  it("clears a file's policies when it says `policies: []`", () => {
    writeFileSync(file, "policies: []\n");
    assert.equal(store.reload("test"), true);
    assert.deepEqual(names(), []);
  });

  it("keeps the last good policies on a broken edit and logs the file", () => {
    writeFileSync(file, "policies:\n  - name: two\n    connect: maybe\n");
    assert.equal(store.reload("test"), false);
    assert.deepEqual(names(), ["one"]);
    const err = logs.find((l) => l.level === 50)?.err ?? "";
    assert.ok(err.startsWith(`${file}:3: `), err);
  });
});
