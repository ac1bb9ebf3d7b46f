import { homedir } from "node:os";
import { join } from "node:path";
import { readJsonFile, writeJsonFile } from "../lib/json-file.js";

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
  writeJsonFile(file, all);
}

function read(file: string): CredentialsFile {
  return { hubs: readJsonFile<Partial<CredentialsFile>>(file, "credentials")?.hubs ?? {} };
}
