/**
 * Vigil configuration schema. One file serves `vigil up`, `vigil hub` and `vigil relay`.
 * Every object is closed (additionalProperties: false); defaults live here, so
 * `Config` is the fully defaulted shape that loadConfig() returns.
 */
import { Type, type Static } from "typebox";

const PORT = "(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d{2}|6[0-4]\\d{3}|[1-5]\\d{4}|[1-9]\\d{0,3}|0)";
const HOST = "(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)";

/** "host:port" or "[v6]:port", port 0–65535 (0 = pick a free port). */
export const HOST_PORT_PATTERN = `^${HOST}:${PORT}$`;
/** A connection target: host:port, or a URL (scheme://…). */
export const TARGET_PATTERN = `^(?:${HOST}:${PORT}|[A-Za-z][A-Za-z0-9+.-]*://\\S+)$`;
export const CONNECTION_NAME_PATTERN = "^[a-z0-9][a-z0-9._-]{0,62}$";

export const CONNECTION_TYPES = ["postgres", "ssh", "http", "kubernetes", "tcp"] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const closed = { additionalProperties: false } as const;
const HostPort = (def: string) => Type.String({ pattern: HOST_PORT_PATTERN, default: def });
const NonEmpty = () => Type.String({ minLength: 1 });
const Millis = (def: number) => Type.Integer({ minimum: 1, default: def });

export const ConnectionSchema = Type.Object(
  {
    name: Type.String({ pattern: CONNECTION_NAME_PATTERN }),
    type: Type.Enum(CONNECTION_TYPES),
    target: Type.String({ pattern: TARGET_PATTERN }),
    /** Free-form for now; each engine validates its own credentials. */
    credentials: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    labels: Type.Record(Type.String(), Type.String(), { default: {} }),
  },
  closed,
);

const Listen = Type.Object(
  {
    api: HostPort("127.0.0.1:8080"),
    grpc: HostPort("127.0.0.1:8010"),
    postgres: HostPort("127.0.0.1:15432"),
    ssh: HostPort("127.0.0.1:2222"),
    http: HostPort("127.0.0.1:8443"),
  },
  { ...closed, default: {} },
);

/** Hub server certificate (PEM files) for gRPC and the API. */
const Tls = Type.Object({ cert: NonEmpty(), key: NonEmpty() }, closed);

/** Exactly one of embedded / nats; clickhouse only alongside nats (checked in load.ts). */
const Storage = Type.Object(
  {
    embedded: Type.Optional(Type.Object({ path: Type.String({ minLength: 1, default: "./data" }) }, closed)),
    nats: Type.Optional(Type.Object({ url: NonEmpty() }, closed)),
    /** The recording store beside NATS: a ClickHouse server (`url`) or chDB in this process (`path`). */
    clickhouse: Type.Optional(
      Type.Object(
        {
          url: Type.Optional(NonEmpty()),
          path: Type.Optional(NonEmpty()),
          database: Type.String({ minLength: 1, default: "vigil" }),
        },
        closed,
      ),
    ),
    /** Recordings older than this many days are dropped by ClickHouse's TTL; 0 keeps them forever. */
    retentionDays: Type.Integer({ minimum: 0, default: 0 }),
  },
  { ...closed, default: { embedded: { path: "./data" } } },
);

/** RFC 7662 introspection of opaque access tokens; the secret comes from the config or an env var. */
const Introspection = Type.Object(
  {
    clientId: NonEmpty(),
    clientSecret: Type.Optional(NonEmpty()),
    clientSecretEnv: Type.Optional(NonEmpty()),
    authMethod: Type.Enum(["client_secret_basic", "client_secret_post"] as const, { default: "client_secret_basic" }),
  },
  closed,
);

const Oidc = Type.Object(
  {
    issuer: NonEmpty(),
    audience: NonEmpty(),
    groupsClaim: Type.String({ minLength: 1, default: "groups" }),
    usernameClaim: Type.String({ minLength: 1, default: "sub" }),
    /** Public client for human logins (`vigil login` device flow, web login); advertised in /api/v1/info. */
    clientId: Type.Optional(NonEmpty()),
    introspection: Type.Optional(Introspection),
  },
  closed,
);

const Identity = Type.Object(
  {
    oidc: Type.Array(Oidc, { default: [] }),
    issuer: Type.String({ minLength: 1, default: "vigil" }),
    audience: Type.String({ minLength: 1, default: "vigil" }),
    signingKeyFile: Type.Optional(NonEmpty()),
    adminGroups: Type.Array(Type.String(), { default: ["vigil-admins"] }),
    /** External URL of the hub API (web login redirect URIs); default: the URL the browser used. */
    publicUrl: Type.Optional(Type.String({ pattern: "^https?://\\S+$" })),
  },
  { ...closed, default: {} },
);

/** Hub side: the token relays must present to enroll. */
const Enrollment = Type.Object(
  { token: Type.Optional(NonEmpty()), tokenFile: Type.Optional(NonEmpty()) },
  { ...closed, default: {} },
);

const Hub = Type.Object(
  {
    id: Type.Optional(NonEmpty()),
    heartbeatMs: Millis(5000),
    tunnelOpenTimeoutMs: Millis(10000),
    /** The gRPC address clients should dial (host:port), when it differs from listen.grpc (load balancer, port mapping). */
    advertiseGrpc: Type.Optional(Type.String({ pattern: HOST_PORT_PATTERN })),
    /** The SSH jump host: its host key (OpenSSH format), shared by hubs behind one address; default <data>/ssh-host.key. */
    ssh: Type.Object({ hostKeyFile: Type.Optional(NonEmpty()) }, { ...closed, default: {} }),
    /** The postgres front door. TLS uses `tls` when set, else a self-signed certificate in the data dir. */
    postgres: Type.Object(
      {
        /** Accept the token as a plaintext password from loopback clients without TLS (local development). */
        allowPlaintext: Type.Boolean({ default: false }),
      },
      { ...closed, default: {} },
    ),
    /** Run the recording ingest worker (JetStream → ClickHouse) inside this hub when it has a store. */
    ingest: Type.Boolean({ default: true }),
  },
  { ...closed, default: {} },
);

/** Approval notifications: a webhook (Slack-compatible payload) for new requests and decisions. */
const Approvals = Type.Object(
  {
    webhook: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: "^https?://\\S+$" }),
          headers: Type.Optional(Type.Record(Type.String(), Type.String())),
        },
        closed,
      ),
    ),
  },
  { ...closed, default: {} },
);

const Relay = Type.Object(
  {
    id: Type.Optional(NonEmpty()),
    hub: HostPort("127.0.0.1:8010"),
    /** Every hub to keep a link to (default: [hub]); a name resolving to several addresses is a link to each. */
    hubs: Type.Optional(Type.Array(Type.String({ pattern: HOST_PORT_PATTERN }), { minItems: 1 })),
    token: Type.Optional(NonEmpty()),
    tokenFile: Type.Optional(NonEmpty()),
    segment: Type.String({ minLength: 1, default: "local" }),
    keyFile: Type.Optional(NonEmpty()),
    /** SSH host key of the relay's ssh engine (OpenSSH format); default <data>/relay-<id>-ssh-host.key. */
    sshHostKeyFile: Type.Optional(NonEmpty()),
    tls: Type.Optional(Type.Object({ ca: Type.Optional(NonEmpty()), serverName: Type.Optional(NonEmpty()) }, closed)),
    insecure: Type.Boolean({ default: false }),
    heartbeatMs: Millis(5000),
    reconnect: Type.Object({ initialMs: Millis(500), maxMs: Millis(5000) }, { ...closed, default: {} }),
    drainTimeoutMs: Millis(30000),
    connections: Type.Array(ConnectionSchema, { default: [] }),
  },
  closed,
);

/**
 * What a relay does with recordings while NATS is away: spool them to disk (bounded), and when even
 * that fails either stop recorded sessions (`block`, fail closed) or keep going and count the loss.
 */
const Recording = Type.Object(
  {
    onFailure: Type.Enum(["block", "continue"] as const, { default: "block" }),
    spool: Type.Object(
      {
        /** Default: <data dir>/spool. */
        dir: Type.Optional(NonEmpty()),
        maxBytes: Type.Integer({ minimum: 1, default: 1073741824 }),
      },
      { ...closed, default: {} },
    ),
  },
  { ...closed, default: {} },
);

const Log = Type.Object({ level: Type.Enum(LOG_LEVELS, { default: "info" }) }, { ...closed, default: {} });

export const ConfigSchema = Type.Object(
  {
    listen: Listen,
    tls: Type.Optional(Tls),
    storage: Storage,
    identity: Identity,
    enrollment: Enrollment,
    policies: Type.Array(Type.String({ minLength: 1 }), { default: ["policies/*.yaml"] }),
    hub: Hub,
    approvals: Approvals,
    relay: Type.Optional(Relay),
    recording: Recording,
    log: Log,
  },
  closed,
);

export type Config = Static<typeof ConfigSchema>;
export type Connection = Static<typeof ConnectionSchema>;
export type RelayConfig = NonNullable<Config["relay"]>;
export type StorageConfig = Config["storage"];
export type RecordingConfig = Config["recording"];
export type OidcConfig = Config["identity"]["oidc"][number];
