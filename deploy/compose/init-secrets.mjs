// One-shot setup for the compose demo (service `vigil-init`): creates the shared secrets once, each in the
// volume of the services that need it, and keeps the ones that exist (so `docker compose up` again, or a
// restart, changes nothing; `docker compose down -v` starts over).
//
//   --hub DIR      hub-signing.key    the hubs' Ed25519 token-signing key (PKCS#8 PEM), the same on every hub
//   --fleet DIR    enrollment.token   the fleet secret: hubs check it (enrollment.tokenFile), relays present
//                                     it (relay.tokenFile)
//   --target DIR   postgres.password  the demo PostgreSQL target's password (POSTGRES_PASSWORD_FILE)
//   --owner UID:GID                   chown the hub and fleet files to the user Vigil runs as (10001:10001)
//
// Plain JavaScript with node: builtins only, so it runs with `node` in the Vigil image (and in the tests).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stdout } from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    hub: { type: "string" },
    fleet: { type: "string" },
    target: { type: "string" },
    owner: { type: "string" },
  },
});

const owner = parseOwner(values.owner);

const secrets = [
  {
    dir: values.hub,
    name: "hub-signing.key",
    // Read by Vigil only: private to its user.
    mode: 0o400,
    chown: true,
    make: () => generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  },
  {
    dir: values.fleet,
    name: "enrollment.token",
    mode: 0o400,
    chown: true,
    make: () => `${randomBytes(32).toString("base64url")}\n`,
  },
  {
    dir: values.target,
    name: "postgres.password",
    // Read by the postgres image's own user (and later by a relay holding the target's credentials):
    // this volume is mounted by those containers only.
    mode: 0o444,
    chown: false,
    make: () => `${randomBytes(18).toString("base64url")}\n`,
  },
];

for (const secret of secrets) {
  if (!secret.dir) continue;
  mkdirSync(secret.dir, { recursive: true, mode: 0o755 });
  const file = join(secret.dir, secret.name);
  try {
    writeFileSync(file, secret.make(), { mode: secret.mode, flag: "wx" });
    if (owner && secret.chown) chownSync(file, owner.uid, owner.gid);
    stdout.write(`vigil-init: created ${file}\n`);
  } catch (err) {
    if (!(err instanceof Error && "code" in err && err.code === "EEXIST")) throw err;
    stdout.write(`vigil-init: kept ${file}\n`);
  }
}

/** "10001:10001" → {uid, gid}; undefined when not given. */
function parseOwner(value) {
  if (value === undefined) return undefined;
  const m = /^(\d+):(\d+)$/.exec(value);
  if (!m) throw new Error(`--owner: expected UID:GID, got "${value}"`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}
