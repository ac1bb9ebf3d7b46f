import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { parseHostPort } from "../../lib/address.js";
import { apiRequest } from "../api-client.js";
import { clientOptions, withClientOptions } from "../options.js";

interface KeyInfo {
  id: string;
  fingerprint: string;
  name: string;
  subject: string;
  groups: string[];
  addedAt: string;
  expiresAt?: string;
}

interface HubInfo {
  listen: Record<string, string>;
  ssh?: { hostKey: string };
}

interface ConnectionInfo {
  name: string;
  type: string;
  sshHostKeys: string[];
}

/** `vigil ssh-key add|list|remove` and `vigil ssh-config`: OpenSSH through the hub's jump host. */
export function sshCommands(program: Command): void {
  const key = program.command("ssh-key").description("public keys that log in to the SSH jump host as you");
  withClientOptions(
    key
      .command("add")
      .description("register a public key to your identity (with the groups you have now)")
      .argument("<file>", "OpenSSH public key file, e.g. ~/.ssh/id_ed25519.pub")
      .option("--name <name>", "a label for the key", "key")
      .option("--ttl <duration>", "how long the key logs in (at most 365d); registering it again renews it", "30d"),
  ).action(async (file: string, opts: { name: string; ttl: string }, cmd: Command) => {
    const publicKey = readFileSync(file, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    const added = await apiRequest<KeyInfo>(clientOptions(cmd), "POST", "api/v1/ssh-keys", {
      publicKey,
      name: opts.name,
      ttl: opts.ttl,
    });
    process.stdout.write(`${added.id}\n`);
    process.stderr.write(`registered ${added.fingerprint} for ${added.subject} until ${added.expiresAt}\n`);
  });

  withClientOptions(key.command("list").description("list your registered keys (admins: every key)")).action(
    async (_opts: unknown, cmd: Command) => {
      const { keys } = await apiRequest<{ keys: KeyInfo[] }>(clientOptions(cmd), "GET", "api/v1/ssh-keys");
      const rows = keys.map((k) => [
        k.id.slice(0, 16),
        k.fingerprint,
        k.subject,
        k.name,
        k.addedAt,
        k.expiresAt ?? "-",
      ]);
      process.stdout.write(table([["ID", "FINGERPRINT", "SUBJECT", "NAME", "ADDED", "EXPIRES"], ...rows]));
    },
  );

  withClientOptions(
    key
      .command("remove")
      .description("remove a registered key")
      .argument("<id>", "the key's id (or a unique prefix of it), as `vigil ssh-key list` shows it"),
  ).action(async (prefix: string, _opts: unknown, cmd: Command) => {
    const opts = clientOptions(cmd);
    const { keys } = await apiRequest<{ keys: KeyInfo[] }>(opts, "GET", "api/v1/ssh-keys");
    const matches = keys.filter((k) => k.id.startsWith(prefix.toLowerCase()) || k.fingerprint === prefix);
    if (matches.length !== 1) throw new Error(matches.length ? `"${prefix}" names several keys` : `no key "${prefix}"`);
    await apiRequest(opts, "DELETE", `api/v1/ssh-keys/${matches[0]!.id}`);
    process.stderr.write(`removed ${matches[0]!.fingerprint}\n`);
  });

  withClientOptions(
    program
      .command("ssh-config")
      .description("write known_hosts for the jump host and every ssh connection; print a ~/.ssh/config block")
      .option("--known-hosts <file>", "where to write the host keys", join(homedir(), ".ssh", "vigil_known_hosts"))
      .option("--user <user>", "the jump host login name (any name works; the token or key says who you are)", "vigil"),
  ).action(async (opts: { knownHosts: string; user: string }, cmd: Command) => {
    const client = clientOptions(cmd);
    const info = await apiRequest<HubInfo>(client, "GET", "api/v1/info");
    const { connections } = await apiRequest<{ connections: ConnectionInfo[] }>(client, "GET", "api/v1/connections");
    const jump = jumpAddress(info.listen.ssh ?? "127.0.0.1:2222", client.hub);
    const ssh = connections.filter((c) => c.type === "ssh");
    const lines = [
      ...(info.ssh ? [`${knownHostsName(jump)} ${info.ssh.hostKey}`] : []),
      ...ssh.flatMap((c) => c.sshHostKeys.map((k) => `${c.name} ${k}`)),
    ];
    mkdirSync(dirname(opts.knownHosts), { recursive: true, mode: 0o700 });
    writeFileSync(opts.knownHosts, lines.join("\n") + "\n", { mode: 0o644 });
    process.stderr.write(`wrote ${lines.length} host key(s) to ${opts.knownHosts}\n`);
    const names = ssh.map((c) => c.name).join(" ");
    process.stdout.write(
      [
        `# Vigil: ssh <user>@<connection> goes through the hub's jump host (${jump.host}:${jump.port}).`,
        `# AES-GCM first (OpenSSH's other ciphers stay on offer): it costs the hub and the relays`,
        `# far less than ChaCha20-Poly1305, so file transfers through Vigil go faster.`,
        `Host ${names || "<no ssh connections yet>"}`,
        `  ProxyJump ${opts.user}@${jump.host}:${jump.port}`,
        `  UserKnownHostsFile ${opts.knownHosts}`,
        `  StrictHostKeyChecking yes`,
        `  Ciphers ${PREFER_GCM}`,
        `Host ${jump.host}`,
        `  UserKnownHostsFile ${opts.knownHosts}`,
        `  Ciphers ${PREFER_GCM}`,
        "",
      ].join("\n"),
    );
  });
}

/** OpenSSH's `^` puts these at the head of its default ciphers (OpenSSH 8.0 and later) without removing any. */
const PREFER_GCM = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com";

/** The jump host as the client reaches it: a wildcard listen address means the hub's own host name. */
function jumpAddress(listen: string, hubUrl: string): { host: string; port: number } {
  const { host, port } = parseHostPort(listen);
  const wildcard = host === "0.0.0.0" || host === "::" || host === "[::]";
  return { host: wildcard ? new URL(hubUrl).hostname : host, port };
}

/** known_hosts names a non-22 port as [host]:port. */
function knownHostsName({ host, port }: { host: string; port: number }): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map(
      (r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join("  ")
          .trimEnd() + "\n",
    )
    .join("");
}
