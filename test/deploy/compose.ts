// Just enough of the Compose file format to check deploy/compose and to run its services without Docker:
// variable interpolation, YAML merge keys, volumes, ports and the paths a container sees.
import { readFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parse } from "yaml";

export type Scalar = string | number | boolean | null;

export interface ComposeVolumeLong {
  type: "bind" | "volume" | "tmpfs";
  source?: string;
  target: string;
  read_only?: boolean;
}

export interface ComposeHealthcheck {
  test: string[] | string;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}

export interface ComposeService {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, Scalar> | string[];
  env_file?: string | string[];
  volumes?: Array<string | ComposeVolumeLong>;
  ports?: Array<string | number | { target: number; published?: string | number; host_ip?: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: ComposeHealthcheck;
  networks?: string[] | Record<string, { aliases?: string[] } | null>;
  restart?: string;
  user?: string;
  read_only?: boolean;
  tmpfs?: string | string[];
  stop_grace_period?: string;
  secrets?: Array<string | { source: string }>;
  configs?: Array<string | { source: string }>;
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
  secrets?: Record<string, { file?: string; environment?: string }>;
  configs?: Record<string, { file?: string }>;
}

/** Parse a compose file: `${VAR}`, `${VAR:-default}` interpolated from `env`, merge keys (`<<`) resolved. */
export function loadCompose(file: string, env: NodeJS.ProcessEnv = {}): ComposeFile {
  const doc: unknown = parse(interpolate(readFileSync(file, "utf8"), env), { merge: true });
  if (!isRecord(doc) || !isRecord(doc.services)) throw new Error(`${file}: no services`);
  for (const [name, service] of Object.entries(doc.services)) {
    if (!isRecord(service)) throw new Error(`${file}: service ${name} is not a mapping`);
  }
  return doc as unknown as ComposeFile;
}

/** Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR; $$ is a literal $. */
export function interpolate(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (
      match,
      braced: string | undefined,
      op: string | undefined,
      fallback: string | undefined,
      bare: string | undefined,
    ) => {
      if (match === "$$") return "$";
      const name = braced ?? bare ?? "";
      const value = env[name];
      if (op === ":-") return value === undefined || value === "" ? (fallback ?? "") : value;
      if (op === "-") return value === undefined ? (fallback ?? "") : value;
      return value ?? "";
    },
  );
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asList(value: string[] | string | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : value.split(/\s+/).filter(Boolean);
}

export function environmentOf(service: ComposeService): Record<string, string> {
  const env = service.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((entry) => [entry.split("=")[0] ?? "", entry.split("=").slice(1).join("=")]));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

export function dependenciesOf(service: ComposeService): Map<string, string> {
  const deps = service.depends_on;
  if (deps === undefined) return new Map();
  if (Array.isArray(deps)) return new Map(deps.map((d) => [d, "service_started"]));
  return new Map(Object.entries(deps).map(([d, v]) => [d, v.condition ?? "service_started"]));
}

export function aliasesOf(name: string, service: ComposeService): string[] {
  const networks = service.networks;
  const aliases = [name];
  if (isRecord(networks)) {
    for (const net of Object.values(networks)) if (net?.aliases) aliases.push(...net.aliases);
  }
  return aliases;
}

export interface Mount {
  kind: "bind" | "volume" | "tmpfs";
  /** Bind: absolute host path. Volume: the volume's name. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** A service's mounts, bind sources resolved against the compose file's directory. */
export function mountsOf(service: ComposeService, composeDir: string): Mount[] {
  const mounts: Mount[] = [];
  for (const volume of service.volumes ?? []) {
    if (typeof volume === "string") {
      const [source = "", target = "", mode = ""] = volume.split(":");
      const bind = source.startsWith(".") || source.startsWith("/") || source.startsWith("~");
      mounts.push({
        kind: bind ? "bind" : "volume",
        source: bind ? resolve(composeDir, source) : source,
        target,
        readOnly: mode.split(",").includes("ro"),
      });
    } else {
      const source = volume.source ?? "";
      mounts.push({
        kind: volume.type,
        source: volume.type === "bind" ? resolve(composeDir, source) : source,
        target: volume.target,
        readOnly: volume.read_only === true,
      });
    }
  }
  for (const target of asList(service.tmpfs)) mounts.push({ kind: "tmpfs", source: "", target, readOnly: false });
  return mounts;
}

export interface PublishedPort {
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** "127.0.0.1:8080:8080", "8080:8080", "8080" (container only: hostPort 0), or the long syntax. */
export function portsOf(service: ComposeService): PublishedPort[] {
  return (service.ports ?? []).map((port) => {
    if (typeof port === "object") {
      return { hostIp: port.host_ip ?? "", hostPort: Number(port.published ?? 0), containerPort: Number(port.target) };
    }
    const parts = String(port)
      .replace(/\/(tcp|udp)$/, "")
      .split(":");
    const containerPort = Number(parts.pop());
    const hostPort = parts.length > 0 ? Number(parts.pop()) : 0;
    return { hostIp: parts.join(":"), hostPort, containerPort };
  });
}

/**
 * The host side of a container's filesystem, for running a service without Docker: bind mounts map to their
 * sources, named volumes to `<volumesRoot>/<name>`. Paths outside every mount are not mapped.
 */
export class ContainerPaths {
  private readonly mounts: Array<{ target: string; host: string }>;

  constructor(mounts: Mount[], volumesRoot: string) {
    this.mounts = mounts
      .filter((m) => m.kind !== "tmpfs")
      .map((m) => ({ target: m.target, host: m.kind === "bind" ? m.source : join(volumesRoot, m.source) }))
      // Longest target first, so /etc/vigil/hub.yaml wins over an /etc/vigil mount.
      .sort((a, b) => b.target.length - a.target.length);
  }

  /** The host path for `containerPath`, or undefined when it is not under a mount. */
  map(containerPath: string): string | undefined {
    for (const m of this.mounts) {
      if (containerPath === m.target) return m.host;
      if (containerPath.startsWith(`${m.target}/`)) return join(m.host, containerPath.slice(m.target.length + 1));
    }
    return undefined;
  }

  /** Like map(), but a path outside every mount is an error: the container would not find the file. */
  require(containerPath: string, what: string): string {
    const host = this.map(containerPath);
    if (host === undefined)
      throw new Error(`${what}: ${containerPath} is not on any volume or bind mount of the service`);
    return host;
  }

  /** Map every absolute path in a config tree (strings only), leaving other strings alone. */
  mapTree(value: unknown, what: string): unknown {
    if (typeof value === "string") return isAbsolute(value) ? this.require(value, what) : value;
    if (Array.isArray(value)) return value.map((v) => this.mapTree(v, what));
    if (isRecord(value))
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.mapTree(v, `${what}.${k}`)]));
    return value;
  }
}
