import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";

/** A token `vigil login` obtained for one hub. */
export interface StoredLogin {
  token: string;
  issuer: string;
  subject?: string;
  expiresAt?: string;
}

interface CredentialsFile {
  hubs: Record<string, StoredLogin>;
}

/** $XDG_CONFIG_HOME/vigil/credentials.json, else ~/.config/vigil/credentials.json. */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "vigil", "credentials.json");
}

/** Logins are keyed by the hub URL as given, without trailing slashes. */
const hubKey = (hub: string) => hub.replace(/\/+$/, "");

export function loadLogin(hub: string, file = credentialsPath()): StoredLogin | undefined {
  return read(file).hubs[hubKey(hub)];
}

export function saveLogin(hub: string, login: StoredLogin, file = credentialsPath()): void {
  const all = read(file);
  all.hubs[hubKey(hub)] = login;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(all, null, 2) + "\n", { mode: 0o600 });
  chmodSync(tmp, 0o600); // mode applies only when the file is created
  renameSync(tmp, file);
}

function read(file: string): CredentialsFile {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<CredentialsFile>;
    return { hubs: parsed.hubs ?? {} };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { hubs: {} };
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}
