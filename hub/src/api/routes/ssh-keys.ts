import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { parseDuration } from "../../../../lib/duration.js";
import { VigilError } from "../../../../lib/errors.js";
import type { Identity } from "../../identity/identity.js";
import { keyExpired, parsePublicKey, type SshKeyRecord, type SshKeyStore } from "../../ssh-keys/store.js";
import { Forbidden } from "../errors.js";

const AddKey = Type.Object(
  {
    publicKey: Type.String({ minLength: 16, maxLength: 16_384, description: "OpenSSH public key line" }),
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9@._ -]{0,127}$", default: "key" }),
    ttl: Type.String({
      pattern: "^[0-9]{1,9}[smhd]?$",
      default: "30d",
      description: "how long the key logs in: 90s, 30m, 12h, 30d (at most 365d)",
    }),
  },
  { additionalProperties: false },
);

const KeyInfo = Type.Object({
  id: Type.String(),
  fingerprint: Type.String(),
  publicKey: Type.String(),
  name: Type.String(),
  subject: Type.String(),
  groups: Type.Array(Type.String()),
  addedAt: Type.String(),
  addedBy: Type.String(),
  expiresAt: Type.Optional(Type.String()),
});

/** The longest a registration may last: the groups it carries are the registrant's at that time. */
const MAX_TTL_SECONDS = 365 * 86400;

const KeyId = Type.Object({ id: Type.String({ pattern: "^[0-9a-f]{64}$" }) });

const info = ({ issuer: _issuer, ...rest }: SshKeyRecord) => rest;

/**
 * Public keys for the SSH jump host. A caller registers keys to its own identity (with the groups
 * it has now, for `ttl`) and sees and removes its own; admins see and remove every key.
 */
export const sshKeyRoutes: FastifyPluginAsyncTypebox<{
  keys: SshKeyStore;
  isAdmin: (who: Identity) => boolean;
}> = async (app, { keys, isAdmin }) => {
  const caller = (req: FastifyRequest) => req.identity!;

  app.post("/ssh-keys", { schema: { body: AddKey, response: { 201: KeyInfo } } }, async (req, reply) => {
    const who = caller(req);
    const { publicKey, id, fingerprint } = parsePublicKey(req.body.publicKey);
    const ttl = requestTtl(req.body.ttl);
    if (ttl > MAX_TTL_SECONDS) throw new VigilError("bad_request", `ttl ${req.body.ttl} is longer than 365d`);
    const now = Date.now();
    const rec: SshKeyRecord = {
      id,
      fingerprint,
      publicKey,
      name: req.body.name,
      subject: who.subject,
      groups: who.groups,
      issuer: who.issuer,
      addedAt: new Date(now).toISOString(),
      addedBy: who.subject,
      expiresAt: new Date(now + ttl * 1000).toISOString(),
    };
    // Registering again renews your own key, or takes over a key whose registration has expired.
    const existing = keys.get(id);
    if (existing && (existing.subject === who.subject || keyExpired(existing, now))) await keys.remove(id);
    await keys.add(rec);
    req.log.info(
      { audit: "ssh_key.added", subject: who.subject, fingerprint, expiresAt: rec.expiresAt },
      "ssh key registered",
    );
    return reply.status(201).send(info(rec));
  });

  app.get("/ssh-keys", { schema: { response: { 200: Type.Object({ keys: Type.Array(KeyInfo) }) } } }, async (req) => {
    const who = caller(req);
    const all = isAdmin(who);
    return {
      keys: keys
        .list()
        .filter((k) => all || k.subject === who.subject)
        .map(info),
    };
  });

  app.delete("/ssh-keys/:id", { schema: { params: KeyId, response: { 200: KeyInfo } } }, async (req) => {
    const who = caller(req);
    const rec = keys.get(req.params.id);
    if (!rec) throw new VigilError("not_found", `no registered key ${req.params.id}`);
    if (rec.subject !== who.subject && !isAdmin(who))
      throw new Forbidden(`key ${rec.fingerprint} belongs to ${rec.subject}`);
    await keys.remove(rec.id);
    req.log.info(
      { audit: "ssh_key.removed", by: who.subject, subject: rec.subject, fingerprint: rec.fingerprint },
      "ssh key removed",
    );
    return info(rec);
  });
};

/** The `ttl` of a request in seconds; "0" passes the schema's pattern but is no lifetime. */
function requestTtl(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new VigilError("bad_request", `ttl: ${(err as Error).message}`);
  }
}
