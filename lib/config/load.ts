/**
 * Loads Vigil's config: YAML file, then VIGIL_* env vars, then `overrides`, then schema defaults
 * and validation. Any problem is one ConfigError naming the key (and env var, when env set it).
 *
 * Env mapping: every leaf of the schema maps to VIGIL_ + its path in UPPER_SNAKE
 * (relay.reconnect.initialMs ↔ VIGIL_RELAY_RECONNECT_INITIAL_MS). Values are coerced by the
 * schema type; arrays of strings take JSON or a comma list; other arrays / maps take JSON.
 * Empty values and unknown VIGIL_* vars are ignored.
 *
 * Storage choice: when a later layer (env, then overrides) sets storage.embedded or storage.nats,
 * it replaces the earlier layers' choice: nats drops an earlier embedded; embedded drops an earlier
 * nats and clickhouse. So VIGIL_STORAGE_NATS_URL alone switches a file's embedded storage to nats.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { Type, type TSchema } from "typebox";
import { Value } from "typebox/value";
import { explainSchemaError, formatKey, type SchemaError } from "../schema-errors.js";
import { ConfigSchema, HOST_PORT_PATTERN, TARGET_PATTERN, CONNECTION_NAME_PATTERN, type Config } from "./schema.js";

export type { Config } from "./schema.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "VIGIL_ERR_CONFIG";
  /** Dotted config key ("relay.connections[0].type"); "" for file-level problems. */
  readonly key: string;
  constructor(key: string, detail: string, where: string = key) {
    super(where ? `config: ${where}: ${detail}` : `config: ${detail}`);
    this.key = key;
  }
}

export interface LoadOptions {
  file?: string;
  /** Env to overlay; NOT process.env by default (the CLI passes `env: process.env`). */
  env?: NodeJS.ProcessEnv;
  overrides?: object;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

export function loadConfig(opts: LoadOptions = {}): Config {
  const file = opts.file === undefined ? {} : readConfigFile(opts.file);
  const env = envLayer(opts.env ?? {});
  const overrides = structuredClone(opts.overrides ?? {});
  if (!isObj(overrides)) throw new ConfigError("", "overrides must be an object");
  const merged = overlay(overlay(file, env.layer), overrides);
  const value = Value.Default(ConfigSchema, merged);
  const first = Value.Errors(ConfigSchema, value)[0];
  if (first) throw describe(first, value, env.sources);
  const config = value as Config; // Errors() found nothing, so value is a Config.
  checkSemantics(config);
  return deepFreeze(config);
}

/** VIGIL_ + path segments in UPPER_SNAKE: ["identity", "groupsClaim"] → VIGIL_IDENTITY_GROUPS_CLAIM. */
export function envNameFor(path: string[]): string {
  return ["VIGIL", ...path.map((s) => s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase())].join("_");
}

/** Directory for embedded storage (storage.embedded.path, else "./data"). */
export function dataDir(config: Config): string {
  return config.storage.embedded?.path ?? "./data";
}

interface EnvLeaf {
  name: string;
  path: string[];
  schema: TSchema;
}

function collectLeaves(schema: TSchema, path: string[], out: EnvLeaf[]): EnvLeaf[] {
  if (!Type.IsObject(schema)) out.push({ name: envNameFor(path), path, schema });
  else for (const [key, child] of Object.entries(schema.properties)) collectLeaves(child, [...path, key], out);
  return out;
}

const LEAVES = collectLeaves(ConfigSchema, [], []);

/** Every env var the loader reads, with its config key (for help output and docs). */
export const ENV_VARS: ReadonlyArray<{ name: string; key: string }> = LEAVES.map((l) => ({
  name: l.name,
  key: l.path.join("."),
}));

function readConfigFile(file: string): Obj {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason = err instanceof Error && "code" in err ? String(err.code) : String(err);
    throw new ConfigError("", `cannot read config file ${file} (${reason})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    if (!(err instanceof YAMLParseError)) throw err;
    const pos = err.linePos?.[0];
    const detail = (err.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError("", detail, `${file}:${pos?.line ?? 0}:${pos?.col ?? 0}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isObj(doc)) throw new ConfigError("", "expected a mapping at the top level", file);
  return doc;
}

function envLayer(env: NodeJS.ProcessEnv): { layer: Obj; sources: EnvLeaf[] } {
  const layer: Obj = {};
  const sources: EnvLeaf[] = [];
  for (const leaf of LEAVES) {
    const raw = env[leaf.name];
    if (raw === undefined || raw === "") continue;
    setPath(layer, leaf.path, coerce(leaf, raw));
    sources.push(leaf);
  }
  return { layer, sources };
}

function coerce(leaf: EnvLeaf, raw: string): unknown {
  const s = leaf.schema;
  const fail = (expected: string) =>
    new ConfigError(leaf.path.join("."), `expected ${expected} (got ${JSON.stringify(raw)})`, leaf.name);
  const json = (expected: string, ok: (v: unknown) => boolean): unknown => {
    try {
      const v: unknown = JSON.parse(raw);
      if (ok(v)) return v;
    } catch {
      // fall through
    }
    throw fail(expected);
  };
  if (Type.IsInteger(s)) {
    if (!/^[+-]?\d+$/.test(raw.trim())) throw fail("integer");
    return Number(raw);
  }
  if (Type.IsNumber(s)) {
    if (raw.trim() === "" || !Number.isFinite(Number(raw))) throw fail("number");
    return Number(raw);
  }
  if (Type.IsBoolean(s)) {
    const v = raw.trim().toLowerCase();
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    throw fail("boolean (true/false/1/0)");
  }
  if (Type.IsArray(s) && Type.IsString(s.items) && !raw.trim().startsWith("[")) {
    return raw
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== "");
  }
  if (Type.IsArray(s)) return json("JSON array", Array.isArray);
  if (Type.IsRecord(s) || Type.IsUnknown(s)) return json("JSON object", isObj);
  return raw; // strings and enums; the schema checks the rest
}

function setPath(target: Obj, path: string[], value: unknown): void {
  let node = target;
  for (const seg of path.slice(0, -1)) {
    const next = node[seg];
    node = isObj(next) ? next : (node[seg] = {});
  }
  node[path[path.length - 1] ?? ""] = value;
}

/** Deep-merge `layer` over `base` (arrays replace); a layer's storage backend replaces base's. */
function overlay(base: Obj, layer: Obj): Obj {
  const out: Obj = { ...base };
  if (isObj(layer.storage) && isObj(base.storage)) {
    const storage = { ...base.storage };
    if (layer.storage.nats !== undefined) delete storage.embedded;
    if (layer.storage.embedded !== undefined) {
      delete storage.nats;
      delete storage.clickhouse;
    }
    out.storage = storage;
  }
  for (const [key, value] of Object.entries(layer)) {
    if (value === undefined) continue;
    const prev = out[key];
    out[key] = isObj(prev) && isObj(value) ? overlay(prev, value) : value;
  }
  return out;
}

const PATTERNS: Record<string, string> = {
  [HOST_PORT_PATTERN]: "host:port with port 0-65535",
  [TARGET_PATTERN]: "host:port or URL",
  [CONNECTION_NAME_PATTERN]: "a name matching [a-z0-9][a-z0-9._-]{0,62}",
};

function describe(e: SchemaError, root: unknown, envSources: EnvLeaf[]): ConfigError {
  const { path, detail: base } = explainSchemaError(e, root, PATTERNS);
  let detail = base;
  const env = envSources.find((l) => l.path.every((seg, i) => path[i] === seg));
  if (env) detail += ` (from ${env.name})`;
  return new ConfigError(formatKey(path), detail);
}

function checkSemantics(c: Config): void {
  const { embedded, nats, clickhouse } = c.storage;
  const choose = "set exactly one of storage.embedded or storage.nats";
  if (embedded && nats) throw new ConfigError("storage", `${choose} (got both)`);
  if (!embedded && !nats) throw new ConfigError("storage", `${choose} (got neither)`);
  if (clickhouse && !nats) throw new ConfigError("storage.clickhouse", "requires storage.nats");
  if (clickhouse && !clickhouse.url === !clickhouse.path) {
    throw new ConfigError("storage.clickhouse", "set exactly one of storage.clickhouse.url or storage.clickhouse.path");
  }
  if (!c.relay) return;
  const { initialMs, maxMs } = c.relay.reconnect;
  if (maxMs < initialMs)
    throw new ConfigError(
      "relay.reconnect.maxMs",
      `expected >= relay.reconnect.initialMs (${initialMs}) (got ${maxMs})`,
    );
  const seen = new Map<string, number>();
  c.relay.connections.forEach(({ name }, i) => {
    const first = seen.get(name);
    if (first !== undefined) {
      throw new ConfigError(
        `relay.connections[${i}].name`,
        `duplicate connection name "${name}" (first at relay.connections[${first}])`,
      );
    }
    seen.set(name, i);
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
