import { Type, type Static } from "typebox";

/**
 * The policy language (policies/*.yaml). Documented in docs/policy.md; every key below is part of it.
 * Glob strings use `*` (any run of characters) and `?` (one character).
 */

const Globs = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 });
const Name = Type.String({ pattern: "^[a-z0-9][a-z0-9._-]{0,62}$" });

export const ConnectionMatchSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    types: Type.Optional(Type.Array(Type.Enum(["postgres", "ssh", "http", "kubernetes", "tcp"]), { minItems: 1 })),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    segments: Type.Optional(Globs),
  },
  { additionalProperties: false },
);

export const MatchSchema = Type.Object(
  {
    subjects: Type.Optional(Globs),
    groups: Type.Optional(Globs),
    connections: Type.Optional(Type.Array(ConnectionMatchSchema, { minItems: 1 })),
  },
  { additionalProperties: false },
);

export const SqlMatchSchema = Type.Object(
  {
    statements: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    ddl: Type.Optional(Type.Boolean()),
    where: Type.Optional(Type.Enum(["absent", "present"])),
    tables: Type.Optional(Globs),
    functions: Type.Optional(Globs),
  },
  { additionalProperties: false },
);

export const ShellMatchSchema = Type.Object(
  {
    commands: Type.Optional(Globs),
    /** Flags present on the command: short letters (`r` matches -r, -rf) or long names (`recursive`). */
    flags: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    /** Arguments: any of these globs must match some non-flag argument. */
    args: Type.Optional(Globs),
    /** A regular expression on the whole command line, for what argv cannot express. */
    pattern: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

/**
 * SSH port forwarding (`ssh -L` local, `ssh -R` remote), or environment variables the client sends
 * (`env`, globs on names): both refused unless a rule with this match allows them. One of the two.
 */
export const SshMatchSchema = Type.Object(
  {
    forward: Type.Optional(Type.Array(Type.Enum(["local", "remote"]), { minItems: 1 })),
    /** The forwarded-to host (local) or the listening address on the target (remote), as host:port globs. */
    hosts: Type.Optional(Globs),
    /** Names of environment variables (`ssh -o SetEnv`, `SendEnv`). */
    env: Type.Optional(Globs),
  },
  { additionalProperties: false },
);

export const HttpMatchSchema = Type.Object(
  {
    methods: Type.Optional(Type.Array(Type.String({ pattern: "^[A-Z]+$" }), { minItems: 1 })),
    paths: Type.Optional(Globs),
  },
  { additionalProperties: false },
);

export const KubernetesMatchSchema = Type.Object(
  {
    verbs: Type.Optional(Globs),
    resources: Type.Optional(Globs),
    groups: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
    namespaces: Type.Optional(Globs),
    names: Type.Optional(Globs),
  },
  { additionalProperties: false },
);

export const ApproversSchema = Type.Object(
  {
    groups: Globs,
    count: Type.Integer({ minimum: 1, maximum: 10, default: 1 }),
    timeout: Type.String({ pattern: "^\\d+[smhd]?$", default: "15m" }),
  },
  { additionalProperties: false },
);

export const MaskSchema = Type.Object(
  {
    detectors: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    columns: Type.Optional(Globs),
    fields: Type.Optional(Globs),
    apply: Type.Enum(["live", "record", "both"], { default: "both" }),
  },
  { additionalProperties: false },
);

export const RuleSchema = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String()),
    effect: Type.Enum(["allow", "deny", "review", "mask"]),
    approvers: Type.Optional(ApproversSchema),
    mask: Type.Optional(MaskSchema),
    sql: Type.Optional(SqlMatchSchema),
    shell: Type.Optional(ShellMatchSchema),
    ssh: Type.Optional(SshMatchSchema),
    http: Type.Optional(HttpMatchSchema),
    kubernetes: Type.Optional(KubernetesMatchSchema),
  },
  { additionalProperties: false },
);

/** Who may ask for time-bounded access to the matched connections, and who approves it. */
export const AccessSchema = Type.Object(
  {
    approvers: ApproversSchema,
    maxDuration: Type.String({ pattern: "^\\d+[smhd]?$", default: "8h" }),
  },
  { additionalProperties: false },
);

export const PolicySchema = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String()),
    match: Type.Object(MatchSchema.properties, { additionalProperties: false, default: {} }),
    connect: Type.Boolean({ default: false }),
    access: Type.Optional(AccessSchema),
    rules: Type.Array(RuleSchema, { default: [] }),
  },
  { additionalProperties: false },
);

export const PolicyFileSchema = Type.Object(
  { policies: Type.Array(PolicySchema, { default: [] }) },
  { additionalProperties: false },
);

export type Match = Static<typeof MatchSchema>;
export type ConnectionMatch = Static<typeof ConnectionMatchSchema>;
export type Rule = Static<typeof RuleSchema>;
export type Policy = Static<typeof PolicySchema>;
export type PolicyFile = Static<typeof PolicyFileSchema>;
export type SqlMatch = Static<typeof SqlMatchSchema>;
export type ShellMatch = Static<typeof ShellMatchSchema>;
export type SshMatch = Static<typeof SshMatchSchema>;
export type HttpMatch = Static<typeof HttpMatchSchema>;
export type KubernetesMatch = Static<typeof KubernetesMatchSchema>;
export type MaskRule = Static<typeof MaskSchema>;
export type AccessRule = Static<typeof AccessSchema>;
