import { pino, type Logger } from "pino";

export type { Logger };

/**
 * One logger per process. Paths that could carry a secret are redacted even though the code never
 * logs them on purpose: a token or credential in a log is an incident.
 */
export function createLogger(level: string, name = "vigil"): Logger {
  // Logs go to stderr: stdout belongs to what a command prints for its user (a token, a banner).
  return pino(
    {
      name,
      level,
      redact: {
        paths: ["token", "*.token", "password", "*.password", "authorization", "*.authorization", "credentials"],
        censor: "[redacted]",
      },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}
