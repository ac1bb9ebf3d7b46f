// The shared test servers started by test/support/global.ts, as published in the environment
// (so child processes spawned by tests see them too).

export const TEST_ENV = {
  pgHost: "VIGIL_TEST_PG_HOST",
  pgPort: "VIGIL_TEST_PG_PORT",
  pgUser: "VIGIL_TEST_PG_USER",
  pgPassword: "VIGIL_TEST_PG_PASSWORD",
  pgUrl: "VIGIL_TEST_PG_URL",
  natsUrl: "VIGIL_TEST_NATS_URL",
  sshdPort: "VIGIL_TEST_SSHD_PORT",
  sshdUser: "VIGIL_TEST_SSHD_USER",
  sshdKey: "VIGIL_TEST_SSHD_KEY",
  sshdHostPublicKey: "VIGIL_TEST_SSHD_HOST_PUBLIC_KEY",
  sshdLog: "VIGIL_TEST_SSHD_LOG",
} as const;

export type TestEnvKey = keyof typeof TEST_ENV;

export interface TestServices {
  pg: { host: string; port: number; user: string; password: string; url: string };
  nats: { url: string };
  sshd: {
    host: string;
    port: number;
    user: string;
    /** Private key authorised for `user`. */
    clientKeyPath: string;
    /** `ssh-ed25519 AAAA...` line, for tests that verify the host key. */
    hostPublicKey: string;
    /** sshd's own log (level INFO). */
    logPath: string;
  };
}

function readTestEnv(): Record<TestEnvKey, string> {
  const keys = Object.keys(TEST_ENV) as TestEnvKey[];
  const missing = keys.filter((key) => !process.env[TEST_ENV[key]]).map((key) => TEST_ENV[key]);
  if (missing.length > 0) {
    throw new Error(
      `test services are not running (missing ${missing.join(", ")}). They are started by ` +
        "test/support/global.ts, which .mocharc.json loads: run the tests with `npm test` or `bash test/run.sh [files]`.",
    );
  }
  return Object.fromEntries(keys.map((key) => [key, process.env[TEST_ENV[key]] ?? ""])) as Record<TestEnvKey, string>;
}

/** Connection details of the shared PostgreSQL, NATS and sshd; throws if they were not started. */
export function testServices(): TestServices {
  const env = readTestEnv();
  return {
    pg: { host: env.pgHost, port: Number(env.pgPort), user: env.pgUser, password: env.pgPassword, url: env.pgUrl },
    nats: { url: env.natsUrl },
    sshd: {
      host: "127.0.0.1",
      port: Number(env.sshdPort),
      user: env.sshdUser,
      clientKeyPath: env.sshdKey,
      hostPublicKey: env.sshdHostPublicKey,
      logPath: env.sshdLog,
    },
  };
}
