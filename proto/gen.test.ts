import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const exec = promisify(execFile);
const repo = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(repo, "node_modules/.bin", name);

describe("proto", function () {
  this.timeout(60_000);

  it("committed generated code matches `npm run proto` (run it after editing proto/)", async () => {
    const out = mkdtempSync(join(tmpdir(), "vigil-proto-"));
    try {
      await exec(bin("buf"), ["generate", "--output", out], { cwd: repo });
      const fresh = join(out, "proto/gen/vigil/v1");
      await exec(
        bin("prettier"),
        ["--config", join(repo, ".prettierrc.json"), "--log-level", "warn", "--write", fresh],
        { cwd: repo },
      );
      const committed = join(repo, "proto/gen/vigil/v1");
      assert.deepEqual(readdirSync(fresh).sort(), readdirSync(committed).sort());
      for (const f of readdirSync(fresh)) {
        assert.equal(
          readFileSync(join(committed, f), "utf8"),
          readFileSync(join(fresh, f), "utf8"),
          `proto/gen/vigil/v1/${f} is stale: run npm run proto`,
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("passes buf lint", async () => {
    const { stdout, stderr } = await exec(bin("buf"), ["lint"], { cwd: repo });
    assert.equal(stdout + stderr, "");
  });
});
