/**
 * The credentials a relay logs in to an SSH target with, from `connection.credentials`:
 * `{user, privateKeyFile | password | passwordEnv, hostKey?}`. Only the relay holds them.
 */
import { readFileSync } from "node:fs";
import ssh2 from "ssh2";
import { Type, type Static } from "typebox";
import { Value } from "typebox/value";
import { ConfigError } from "../../../../lib/config/load.js";
import type { Connection } from "../../../../lib/config/schema.js";
import { explainSchemaError, formatKey } from "../../../../lib/schema-errors.js";

export interface SshCredentials {
  user: string;
  privateKey?: string;
  password?: string;
  /** The target's public host key (`ssh-ed25519 AAAA…`): when set, any other key is refused. */
  hostKey?: string;
}

const NonEmpty = () => Type.String({ minLength: 1 });

const CredentialsSchema = Type.Object(
  {
    user: NonEmpty(),
    privateKeyFile: Type.Optional(NonEmpty()),
    password: Type.Optional(NonEmpty()),
    passwordEnv: Type.Optional(NonEmpty()),
    hostKey: Type.Optional(Type.String({ pattern: "^(ssh-|ecdsa-)\\S+ [A-Za-z0-9+/=]+( .*)?$" })),
  },
  { additionalProperties: false },
);

type RawCredentials = Static<typeof CredentialsSchema>;

const SECRET_SOURCES = ["privateKeyFile", "password", "passwordEnv"] as const;

/** Validates `connection.credentials` and reads the key or password; throws a ConfigError naming the key. */
export function sshCredentials(connection: Connection): SshCredentials {
  const fail = (key: string, detail: string): ConfigError => {
    const where = key ? `credentials.${key}` : "credentials";
    return new ConfigError(where, detail, `relay connection "${connection.name}": ${where}`);
  };
  const raw = structuredClone(connection.credentials ?? {});
  const first = Value.Errors(CredentialsSchema, raw)[0];
  if (first) {
    // Explained against a copy without the password, so a mistyped password is never echoed back.
    const { password: _password, ...shown } = raw as Record<string, unknown>;
    const { path, detail } = explainSchemaError(first, shown);
    throw fail(formatKey(path), detail);
  }
  const creds = raw as RawCredentials;
  const sources = SECRET_SOURCES.filter((key) => creds[key] !== undefined);
  if (sources.length !== 1) {
    throw fail(
      "",
      `set exactly one of ${SECRET_SOURCES.join(", ")}${sources.length ? ` (got ${sources.join(", ")})` : ""}`,
    );
  }
  const out: SshCredentials = { user: creds.user };
  if (creds.hostKey) out.hostKey = creds.hostKey;
  if (creds.privateKeyFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(creds.privateKeyFile, "utf8");
    } catch (error) {
      throw fail(
        "privateKeyFile",
        `cannot read ${creds.privateKeyFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
    const parsed = ssh2.utils.parseKey(text);
    if (parsed instanceof Error) throw fail("privateKeyFile", `${creds.privateKeyFile}: ${parsed.message}`);
    out.privateKey = text;
  } else if (creds.passwordEnv !== undefined) {
    const password = process.env[creds.passwordEnv];
    if (!password) throw fail("passwordEnv", `environment variable ${creds.passwordEnv} is not set or empty`);
    out.password = password;
  } else {
    out.password = creds.password;
  }
  return out;
}
