/**
 * The credentials a relay logs in to a PostgreSQL target with, from `connection.credentials`.
 * Only the relay holds them; clients never see the user name or password.
 */
import { readFileSync } from "node:fs";
import { Type, type Static } from "typebox";
import { Value } from "typebox/value";
import { ConfigError } from "../../../../lib/config/load.js";
import type { Connection } from "../../../../lib/config/schema.js";
import { explainSchemaError, formatKey } from "../../../../lib/schema-errors.js";

export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
export type SslMode = (typeof SSL_MODES)[number];

export interface PostgresCredentials {
  user: string;
  password?: string;
  /** Pins the connection to this database; otherwise the client chooses. */
  database?: string;
  /** As libpq's sslmode, default "prefer". */
  sslmode: SslMode;
  /**
   * CA bundle (PEM file) that verify-ca and verify-full check the server against. When absent they
   * use Node's default trust store (Mozilla's roots plus NODE_EXTRA_CA_CERTS), which fits managed
   * databases with publicly trusted certificates; a private CA must be named here.
   */
  sslrootcert?: string;
}

const NonEmpty = () => Type.String({ minLength: 1 });

const CredentialsSchema = Type.Object(
  {
    user: NonEmpty(),
    password: Type.Optional(NonEmpty()),
    /** Read when the credentials are resolved; one trailing newline is dropped. */
    passwordFile: Type.Optional(NonEmpty()),
    /** Name of an environment variable holding the password. */
    passwordEnv: Type.Optional(NonEmpty()),
    database: Type.Optional(NonEmpty()),
    sslmode: Type.Enum(SSL_MODES, { default: "prefer" }),
    sslrootcert: Type.Optional(NonEmpty()),
  },
  { additionalProperties: false },
);

type RawCredentials = Static<typeof CredentialsSchema>;

const PASSWORD_SOURCES = ["password", "passwordFile", "passwordEnv"] as const;

/** Validates `connection.credentials` and resolves the password; throws a ConfigError naming the bad key. */
export function postgresCredentials(connection: Connection): PostgresCredentials {
  const fail = (key: string, detail: string): ConfigError => {
    const where = key ? `credentials.${key}` : "credentials";
    return new ConfigError(where, detail, `relay connection "${connection.name}": ${where}`);
  };
  const raw = Value.Default(CredentialsSchema, structuredClone(connection.credentials ?? {}));
  const first = Value.Errors(CredentialsSchema, raw)[0];
  if (first) {
    // Explained against a copy without the password, so a mistyped password is never echoed back.
    const { password: _password, ...shown } = raw as Record<string, unknown>;
    const { path, detail } = explainSchemaError(first, shown);
    throw fail(formatKey(path), detail);
  }
  const creds = raw as RawCredentials;
  const sources = PASSWORD_SOURCES.filter((key) => creds[key] !== undefined);
  if (sources.length > 1) {
    throw fail("", `set at most one of ${PASSWORD_SOURCES.join(", ")} (got ${sources.join(", ")})`);
  }
  if (creds.sslrootcert !== undefined) {
    // libpq silently upgrades "require" to verify-ca when a root cert exists; say so instead.
    if (creds.sslmode !== "verify-ca" && creds.sslmode !== "verify-full") {
      throw fail("sslrootcert", `only applies to sslmode verify-ca or verify-full (got ${creds.sslmode})`);
    }
    checkPemFile(creds.sslrootcert, (detail) => fail("sslrootcert", detail));
  }
  return {
    user: creds.user,
    password: resolvePassword(creds, fail),
    database: creds.database,
    sslmode: creds.sslmode,
    sslrootcert: creds.sslrootcert,
  };
}

function resolvePassword(
  creds: RawCredentials,
  fail: (key: string, detail: string) => ConfigError,
): string | undefined {
  if (creds.passwordFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(creds.passwordFile, "utf8");
    } catch (error) {
      throw fail(
        "passwordFile",
        `cannot read ${creds.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
    const password = text.replace(/\r?\n$/, "");
    if (password === "") throw fail("passwordFile", `${creds.passwordFile} is empty`);
    return password;
  }
  if (creds.passwordEnv !== undefined) {
    const password = process.env[creds.passwordEnv];
    if (!password) throw fail("passwordEnv", `environment variable ${creds.passwordEnv} is not set or empty`);
    return password;
  }
  return creds.password;
}

function checkPemFile(path: string, fail: (detail: string) => ConfigError): void {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw fail(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) throw fail(`${path} holds no PEM certificate`);
}
