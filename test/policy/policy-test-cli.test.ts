import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { echoServer, type Target } from "../support/targets.js";
import { REPO, spawnVigil, Workdir, type VigilProcess } from "../support/vigil.js";
import { startHubProcess, startRelayProcess, type HubHandle, waitForRelay } from "../support/mesh.js";

const GRANT = `policies:
  - name: dba-prod
    match: { groups: [dba], connections: [{ labels: { env: prod } }] }
    connect: true
`;

async function policyTest(
  hub: HubHandle | undefined,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawnVigil(
    "policy test",
    ["policy", "test", ...args, ...(hub ? ["--hub", hub.api] : [])],
    hub ? { VIGIL_TOKEN: hub.adminToken } : {},
  );
  const { code } = await proc.exited;
  return { code, stdout: proc.stdout, stderr: proc.stderr };
}

describe("vigil policy test", function () {
  this.timeout(120_000);
  const dir = new Workdir();
  let hub: HubHandle;
  let relay: VigilProcess;
  let echo: Target;

  before(async () => {
    echo = await echoServer();
    hub = await startHubProcess(dir, { policy: GRANT });
    // The shipped default policy next to the test grant, as an operator would deploy it.
    writeFileSync(join(hub.policyDir, "default.yaml"), readFileSync(join(REPO, "policies/default.yaml")));
    await hub.proc.waitFor(/policies reloaded/);
    relay = startRelayProcess(dir, {
      id: "relay-pt",
      hub: hub.grpc,
      connections: [{ name: "pg-prod", type: "tcp", target: echo.address, labels: { env: "prod" } }],
    });
    await waitForRelay(hub, "relay-pt");
  });

  after(async () => {
    await relay?.stop();
    await hub?.proc.stop();
    await echo?.close();
    dir.cleanup();
  });

  it("prints the decision and the rule that made it, from the hub's loaded policies", async () => {
    const review = await policyTest(hub, [
      "--identity",
      "alice",
      "--groups",
      "dba",
      "--connection",
      "pg-prod",
      "--type",
      "postgres",
      "DELETE FROM users",
    ]);
    assert.equal(review.code, 0, review.stderr);
    assert.equal(
      review.stdout,
      "connect   granted by dba-prod\ndecision  review  rule production/review-unbounded-writes; 1 approval(s) from dba or vigil-admins within 15m\n" +
        "masks     live: email, card, national_id, phone, jwt, cloud_key, private_key, *.password, *.password_hash, *.secret, *.api_key, *.token, password, secret, token, api_key, apiKey, *.password, *.secret, *.token\n",
    );
    const deny = await policyTest(hub, [
      "--identity",
      "alice",
      "--groups",
      "dba",
      "--connection",
      "pg-prod",
      "--type",
      "postgres",
      "--json",
      "select 1; drop database app",
    ]);
    const parsed = JSON.parse(deny.stdout) as {
      decision: { effect: string; rule: string };
      connection: { labels: Record<string, string> };
    };
    assert.deepEqual([parsed.decision.effect, parsed.decision.rule], ["deny", "baseline/no-drop-database"]);
    assert.deepEqual(parsed.connection.labels, { env: "prod" }, "labels come from the relay");
    const allowed = await policyTest(hub, [
      "--identity",
      "alice",
      "--groups",
      "dba",
      "--connection",
      "pg-prod",
      "--type",
      "postgres",
      "DELETE FROM users WHERE id = 1",
    ]);
    assert.match(allowed.stdout, /decision {2}allow {3}no rule matched/);
  });

  it("agrees with the hub on connect: refused identities are refused by both", async () => {
    const refused = await policyTest(hub, ["--identity", "bob", "--groups", "dev", "--connection", "pg-prod"]);
    assert.equal(refused.stdout, "connect   refused: no policy grants connect\n");
  });

  it("gives the same answer offline from the policy files", async () => {
    const args = [
      "--identity",
      "alice",
      "--groups",
      "dba",
      "--connection",
      "pg-prod",
      "--type",
      "postgres",
      "--label",
      "env=prod",
      "--json",
      "UPDATE accounts SET balance = 0",
    ];
    const online = JSON.parse((await policyTest(hub, args)).stdout) as { decision: unknown };
    const offline = JSON.parse(
      (await policyTest(undefined, ["--policies", join(hub.policyDir, "*.yaml"), ...args])).stdout,
    ) as { decision: unknown };
    assert.deepEqual(offline.decision, online.decision);
    const rm = await policyTest(undefined, [
      "--policies",
      join(REPO, "policies/default.yaml"),
      "--type",
      "ssh",
      "--identity",
      "x",
      "--connection",
      "web-1",
      "sudo sh -c 'cd / && rm -rf --no-preserve-root /'",
    ]);
    assert.match(rm.stdout, /decision {2}deny {4}rule baseline\/no-recursive-delete-of-root/);
    const k8s = await policyTest(undefined, [
      "--policies",
      join(REPO, "policies/default.yaml"),
      "--type",
      "kubernetes",
      "--identity",
      "x",
      "--connection",
      "k8s",
      "DELETE /api/v1/nodes/worker-3",
    ]);
    assert.match(k8s.stdout, /decision {2}deny {4}rule baseline\/no-delete-nodes-or-namespaces/);
  });

  it("is for admins only, and explains an unknown connection", async () => {
    const anonymous = spawnVigil(
      "policy test",
      ["policy", "test", "--identity", "a", "--connection", "pg-prod", "--hub", hub.api],
      { VIGIL_TOKEN: "bad" },
    );
    assert.equal((await anonymous.exited).code, 1);
    assert.match(anonymous.stderr, /token is malformed/);
    const unknown = await policyTest(hub, ["--identity", "a", "--connection", "nope"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no relay serves "nope"; pass its type/);
  });
});
