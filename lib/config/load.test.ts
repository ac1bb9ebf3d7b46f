import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, ENV_VARS, dataDir, envNameFor, loadConfig, type Config } from "./load.js";

const DEFAULTS: Config = {
  listen: {
    api: "127.0.0.1:8080",
    grpc: "127.0.0.1:8010",
    postgres: "127.0.0.1:15432",
    ssh: "127.0.0.1:2222",
    http: "127.0.0.1:8443",
  },
  storage: { embedded: { path: "./data" }, retentionDays: 0 },
  identity: { oidc: [], issuer: "vigil", audience: "vigil", adminGroups: ["vigil-admins"] },
  enrollment: {},
  policies: ["policies/*.yaml"],
  hub: { heartbeatMs: 5000, tunnelOpenTimeoutMs: 10000, postgres: { allowPlaintext: false }, ssh: {}, ingest: true },
  approvals: {},
  recording: { onFailure: "block", spool: { maxBytes: 1073741824 } },
  log: { level: "info" },
};

const RELAY_DEFAULTS = {
  hub: "127.0.0.1:8010",
  segment: "local",
  insecure: false,
  heartbeatMs: 5000,
  reconnect: { initialMs: 500, maxMs: 5000 },
  drainTimeoutMs: 30000,
  connections: [],
};

describe("config/load", () => {
  let dir: string;
  let n = 0;
  const write = (text: string): string => {
    const file = join(dir, `vigil-${++n}.yaml`);
    writeFileSync(file, text);
    return file;
  };
  /** Runs fn, asserts it throws exactly a ConfigError, and returns it. */
  const configError = (fn: () => unknown): ConfigError => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
      assert.equal(err.code, "VIGIL_ERR_CONFIG");
      assert.match(err.message, /^config: /);
      return err;
    }
    assert.fail("expected loadConfig to throw");
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "vigil-config-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe("defaults", () => {
    it("fills every default when nothing is given", () => {
      assert.deepEqual(loadConfig({}), DEFAULTS);
    });

    it("treats an empty or comment-only file as {}", () => {
      assert.deepEqual(loadConfig({ file: write("") }), DEFAULTS);
      assert.deepEqual(loadConfig({ file: write("# nothing here\n") }), DEFAULTS);
    });

    it("fills defaults inside optional blocks and array items", () => {
      const c = loadConfig({
        file: write(
          "relay:\n  connections:\n    - {name: db, type: postgres, target: 'db:5432'}\n" +
            "identity:\n  oidc:\n    - {issuer: 'https://idp', audience: vigil}\n" +
            "storage:\n  nats: {url: 'nats://n:4222'}\n  clickhouse: {url: 'http://ch:8123'}\n",
        ),
      });
      assert.deepEqual(c.relay, {
        ...RELAY_DEFAULTS,
        connections: [{ name: "db", type: "postgres", target: "db:5432", labels: {} }],
      });
      assert.deepEqual(c.identity.oidc, [
        { issuer: "https://idp", audience: "vigil", groupsClaim: "groups", usernameClaim: "sub" },
      ]);
      assert.deepEqual(c.storage, {
        nats: { url: "nats://n:4222" },
        clickhouse: { url: "http://ch:8123", database: "vigil" },
        retentionDays: 0,
      });
      assert.equal(c.tls, undefined);
    });

    it("loads the repo's vigil.yaml", () => {
      const c = loadConfig({ file: fileURLToPath(new URL("../../vigil.yaml", import.meta.url)) });
      assert.deepEqual(c.listen, DEFAULTS.listen);
      assert.deepEqual(c.storage, { embedded: { path: "./data" }, retentionDays: 0 });
      assert.deepEqual(c.policies, ["policies/*.yaml"]);
      assert.deepEqual(c.relay, {
        ...RELAY_DEFAULTS,
        connections: [{ name: "local-postgres", type: "tcp", target: "127.0.0.1:5432", labels: { env: "dev" } }],
      });
      assert.equal(dataDir(c), "./data");
    });
  });

  describe("layers", () => {
    const FILE = [
      "listen: {api: '127.0.0.1:9000', grpc: '127.0.0.1:9010'}",
      "hub: {heartbeatMs: 1000}",
      "relay:",
      "  insecure: false",
      "  connections: [{name: from-file, type: tcp, target: 'h:1'}]",
      "",
    ].join("\n");

    it("env overrides the file, coerced by schema type", () => {
      const c = loadConfig({
        file: write(FILE),
        env: {
          VIGIL_LISTEN_API: "0.0.0.0:8080",
          VIGIL_HUB_HEARTBEAT_MS: "7000",
          VIGIL_RELAY_INSECURE: "true",
          VIGIL_RELAY_RECONNECT_INITIAL_MS: "250",
          VIGIL_RELAY_CONNECTIONS: JSON.stringify([
            { name: "from-env", type: "ssh", target: "box:22", labels: { a: "b" } },
          ]),
          VIGIL_IDENTITY_ADMIN_GROUPS: "ops, sre ,",
          VIGIL_POLICIES: '["a.yaml","b/*.yaml"]',
          VIGIL_LOG_LEVEL: "debug",
          VIGIL_HUB: "elsewhere:1", // CLI's own vars are not config keys: ignored
          VIGIL_TOKEN: "t",
          VIGIL_NOT_A_KEY: "x",
          VIGIL_HUB_ID: "", // empty = unset
        },
      });
      assert.equal(c.listen.api, "0.0.0.0:8080");
      assert.equal(c.listen.grpc, "127.0.0.1:9010", "file value survives");
      assert.equal(c.hub.heartbeatMs, 7000);
      assert.equal(c.hub.id, undefined);
      assert.equal(c.relay?.insecure, true);
      assert.deepEqual(c.relay?.reconnect, { initialMs: 250, maxMs: 5000 });
      assert.deepEqual(c.relay?.connections, [{ name: "from-env", type: "ssh", target: "box:22", labels: { a: "b" } }]);
      assert.deepEqual(c.identity.adminGroups, ["ops", "sre"]);
      assert.deepEqual(c.policies, ["a.yaml", "b/*.yaml"]);
      assert.equal(c.log.level, "debug");
    });

    it("accepts 1/0 booleans and creates optional blocks from env", () => {
      const c = loadConfig({ env: { VIGIL_RELAY_INSECURE: "1", VIGIL_TLS_CERT: "c.pem", VIGIL_TLS_KEY: "k.pem" } });
      assert.deepEqual(c.relay, { ...RELAY_DEFAULTS, insecure: true });
      assert.deepEqual(c.tls, { cert: "c.pem", key: "k.pem" });
      assert.equal(loadConfig({ file: write(FILE), env: { VIGIL_RELAY_INSECURE: "0" } }).relay?.insecure, false);
    });

    it("env storage choice replaces the file's", () => {
      const embedded = write("storage: {embedded: {path: /var/vigil}}\n");
      const toNats = loadConfig({
        file: embedded,
        env: { VIGIL_STORAGE_NATS_URL: "nats://n:4222", VIGIL_STORAGE_CLICKHOUSE_URL: "http://ch:8123" },
      });
      assert.deepEqual(toNats.storage, {
        nats: { url: "nats://n:4222" },
        clickhouse: { url: "http://ch:8123", database: "vigil" },
        retentionDays: 0,
      });
      assert.equal(dataDir(toNats), "./data");
      const nats = write("storage: {nats: {url: 'nats://n'}, clickhouse: {url: 'http://ch'}}\n");
      const toEmbedded = loadConfig({ file: nats, env: { VIGIL_STORAGE_EMBEDDED_PATH: "/tmp/d" } });
      assert.deepEqual(toEmbedded.storage, { embedded: { path: "/tmp/d" }, retentionDays: 0 });
      assert.equal(dataDir(toEmbedded), "/tmp/d");
    });

    it("overrides beat env and the file; the caller's object is left alone", () => {
      const overrides = {
        listen: { api: "127.0.0.1:0" },
        relay: { segment: "edge" },
        identity: { oidc: [{ issuer: "https://idp", audience: "a" }] },
      };
      const c = loadConfig({
        file: write(FILE),
        env: { VIGIL_LISTEN_API: "0.0.0.0:8080", VIGIL_RELAY_SEGMENT: "env-seg", VIGIL_HUB_HEARTBEAT_MS: "7000" },
        overrides,
      });
      assert.equal(c.listen.api, "127.0.0.1:0");
      assert.equal(c.relay?.segment, "edge");
      assert.equal(c.hub.heartbeatMs, 7000, "env still applies where overrides are silent");
      assert.equal(c.listen.grpc, "127.0.0.1:9010");
      assert.deepEqual(
        c.relay?.connections.map((x) => x.name),
        ["from-file"],
      );
      assert.equal(c.identity.oidc[0]?.groupsClaim, "groups");
      assert.deepEqual(overrides.identity.oidc[0], { issuer: "https://idp", audience: "a" }, "not defaulted in place");
      assert.equal(Object.isFrozen(overrides.identity.oidc), false);
    });
  });

  describe("errors", () => {
    it("missing file names the path", () => {
      const file = join(dir, "nope.yaml");
      const e = configError(() => loadConfig({ file }));
      assert.ok(e.message.includes(file), e.message);
    });

    it("YAML syntax error gives file:line:col", () => {
      const file = write("listen:\n  api: 127.0.0.1:8080\n grpc: [oops\n");
      const e = configError(() => loadConfig({ file }));
      assert.match(e.message, new RegExp(`^config: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3:\\d+: `));
    });

    it("a non-mapping document is rejected", () => {
      const e = configError(() => loadConfig({ file: write("- a\n- b\n") }));
      assert.match(e.message, /expected a mapping/);
    });

    const cases: Array<{
      title: string;
      yaml?: string;
      env?: NodeJS.ProcessEnv;
      key: string;
      message: string | RegExp;
    }> = [
      {
        title: "unknown key",
        yaml: "listen: {apii: '1.2.3.4:5'}",
        key: "listen.apii",
        message: "config: listen.apii: unknown key",
      },
      { title: "unknown top-level key", yaml: "lisen: {}", key: "lisen", message: "config: lisen: unknown key" },
      {
        title: "wrong type",
        yaml: "hub: {heartbeatMs: fast}",
        key: "hub.heartbeatMs",
        message: 'config: hub.heartbeatMs: expected integer (got "fast")',
      },
      {
        title: "bad enum",
        yaml: "relay: {connections: [{name: a, type: mysql, target: 'h:1'}]}",
        key: "relay.connections[0].type",
        message:
          'config: relay.connections[0].type: expected one of postgres, ssh, http, kubernetes, tcp (got "mysql")',
      },
      {
        title: "bad host:port (port range)",
        yaml: "listen: {grpc: 'localhost:70000'}",
        key: "listen.grpc",
        message: /^config: listen\.grpc: expected host:port .*\(got "localhost:70000"\)$/,
      },
      {
        title: "bad host:port (no port)",
        yaml: "relay: {hub: hubhost}",
        key: "relay.hub",
        message: /^config: relay\.hub: expected host:port/,
      },
      {
        title: "missing required key",
        yaml: "relay: {connections: [{name: a, type: tcp}]}",
        key: "relay.connections[0].target",
        message: "config: relay.connections[0].target: required",
      },
      {
        title: "bad connection name",
        yaml: "relay: {connections: [{name: Bad_Name, type: tcp, target: 'h:1'}]}",
        key: "relay.connections[0].name",
        message: /^config: relay\.connections\[0\]\.name: expected a name matching/,
      },
      {
        title: "duplicate connection name",
        yaml: "relay: {connections: [{name: db, type: tcp, target: 'h:1'}, {name: x, type: tcp, target: 'h:2'}, {name: db, type: ssh, target: 'h:3'}]}",
        key: "relay.connections[2].name",
        message: 'config: relay.connections[2].name: duplicate connection name "db" (first at relay.connections[0])',
      },
      {
        title: "both embedded and nats",
        yaml: "storage: {embedded: {path: d}, nats: {url: 'nats://n'}}",
        key: "storage",
        message: /^config: storage: set exactly one of storage\.embedded or storage\.nats \(got both\)$/,
      },
      {
        title: "neither embedded nor nats",
        yaml: "storage: {}",
        key: "storage",
        message: /\(got neither\)$/,
      },
      {
        title: "clickhouse with both a url and a path",
        yaml: "storage: {nats: {url: 'nats://n'}, clickhouse: {url: 'http://ch', path: /var/ch}}",
        key: "storage.clickhouse",
        message:
          /^config: storage\.clickhouse: set exactly one of storage\.clickhouse\.url or storage\.clickhouse\.path/,
      },
      {
        title: "clickhouse without nats",
        yaml: "storage: {embedded: {path: d}, clickhouse: {url: 'http://ch'}}",
        key: "storage.clickhouse",
        message: /^config: storage\.clickhouse: requires storage\.nats/,
      },
      {
        title: "reconnect maxMs below initialMs",
        yaml: "relay: {reconnect: {initialMs: 9000}}",
        key: "relay.reconnect.maxMs",
        message: "config: relay.reconnect.maxMs: expected >= relay.reconnect.initialMs (9000) (got 5000)",
      },
      {
        title: "bad env integer",
        env: { VIGIL_HUB_HEARTBEAT_MS: "5s" },
        key: "hub.heartbeatMs",
        message: 'config: VIGIL_HUB_HEARTBEAT_MS: expected integer (got "5s")',
      },
      {
        title: "bad env boolean",
        env: { VIGIL_RELAY_INSECURE: "yes" },
        key: "relay.insecure",
        message: /^config: VIGIL_RELAY_INSECURE: expected boolean/,
      },
      {
        title: "bad env JSON",
        env: { VIGIL_RELAY_CONNECTIONS: "[{name: x}]" },
        key: "relay.connections",
        message: /^config: VIGIL_RELAY_CONNECTIONS: expected JSON array/,
      },
      {
        title: "env value failing the schema names the env var",
        env: { VIGIL_LOG_LEVEL: "loud" },
        key: "log.level",
        message:
          'config: log.level: expected one of fatal, error, warn, info, debug, trace (got "loud") (from VIGIL_LOG_LEVEL)',
      },
    ];
    for (const c of cases) {
      it(`${c.title} → one ConfigError naming ${c.key}`, () => {
        const e = configError(() => loadConfig({ file: c.yaml === undefined ? undefined : write(c.yaml), env: c.env }));
        assert.equal(e.key, c.key);
        if (typeof c.message === "string") assert.equal(e.message, c.message);
        else assert.match(e.message, c.message);
      });
    }
  });

  it("returns a deep-frozen config", () => {
    const c = loadConfig({ file: fileURLToPath(new URL("../../vigil.yaml", import.meta.url)) });
    assert.ok(Object.isFrozen(c));
    assert.ok(Object.isFrozen(c.listen));
    assert.ok(Object.isFrozen(c.relay?.connections));
    assert.ok(Object.isFrozen(c.relay?.connections[0]?.labels));
    assert.throws(() => {
      (c.listen as { api: string }).api = "x";
    }, TypeError);
    assert.equal(loadConfig({}).listen.api, "127.0.0.1:8080", "schema defaults were not frozen or shared");
  });

  describe("helpers", () => {
    it("envNameFor maps key paths to UPPER_SNAKE", () => {
      assert.equal(envNameFor(["listen", "api"]), "VIGIL_LISTEN_API");
      assert.equal(envNameFor(["relay", "reconnect", "initialMs"]), "VIGIL_RELAY_RECONNECT_INITIAL_MS");
      assert.equal(envNameFor(["storage", "embedded", "path"]), "VIGIL_STORAGE_EMBEDDED_PATH");
      assert.equal(envNameFor(["identity", "groupsClaim"]), "VIGIL_IDENTITY_GROUPS_CLAIM");
      assert.equal(envNameFor(["hub", "tunnelOpenTimeoutMs"]), "VIGIL_HUB_TUNNEL_OPEN_TIMEOUT_MS");
    });

    it("ENV_VARS is derived from the schema, unique, and avoids the CLI's own vars", () => {
      const names = ENV_VARS.map((v) => v.name);
      assert.equal(new Set(names).size, names.length);
      assert.ok(ENV_VARS.some((v) => v.name === "VIGIL_RELAY_TLS_SERVER_NAME" && v.key === "relay.tls.serverName"));
      assert.ok(ENV_VARS.some((v) => v.name === "VIGIL_STORAGE_CLICKHOUSE_DATABASE"));
      for (const cli of ["VIGIL_HUB", "VIGIL_TOKEN", "VIGIL_CA"]) assert.ok(!names.includes(cli), cli);
    });
  });
});
