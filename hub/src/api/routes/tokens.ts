import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { parseDuration } from "../../../../lib/duration.js";
import type { Identity } from "../../identity/identity.js";
import { MAX_TTL_SECONDS, type LocalTokens } from "../../identity/local-tokens.js";
import type { TokenRecord } from "../../identity/token-store.js";
import { BadRequest } from "../errors.js";

const CreateToken = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$" }),
    groups: Type.Array(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$" }), { default: [], maxItems: 64 }),
    ttl: Type.String({ default: "1h", description: "30m, 1h, 7d" }),
  },
  { additionalProperties: false },
);

const TokenInfo = Type.Object({
  id: Type.String(),
  subject: Type.String(),
  groups: Type.Array(Type.String()),
  issuedAt: Type.Optional(Type.String()),
  expiresAt: Type.String(),
  issuedBy: Type.Optional(Type.String()),
  revoked: Type.Boolean(),
  revokedAt: Type.Optional(Type.String()),
  revokedBy: Type.Optional(Type.String()),
});

const TokenId = Type.Object({ id: Type.String({ pattern: "^[A-Za-z0-9_-]{1,128}$" }) });

const info = (r: TokenRecord) => ({
  id: r.id,
  subject: r.subject,
  groups: r.groups,
  issuedAt: r.issuedAt,
  expiresAt: r.expiresAt,
  issuedBy: r.issuedBy,
  revoked: r.revokedAt !== undefined,
  revokedAt: r.revokedAt,
  revokedBy: r.revokedBy,
});

/** Local tokens: issue, list (metadata only, never the tokens) and revoke; admin groups only. */
export const tokenRoutes: FastifyPluginAsyncTypebox<{
  tokens: LocalTokens;
  requireAdmin: (req: FastifyRequest) => Identity;
}> = async (app, { tokens, requireAdmin }) => {
  app.post(
    "/tokens",
    {
      schema: {
        body: CreateToken,
        response: { 201: Type.Object({ token: Type.String(), id: Type.String(), expiresAt: Type.String() }) },
      },
    },
    async (req, reply) => {
      const admin = requireAdmin(req);
      let ttl: number;
      try {
        ttl = parseDuration(req.body.ttl);
      } catch (err) {
        throw new BadRequest((err as Error).message);
      }
      if (ttl > MAX_TTL_SECONDS) throw new BadRequest("ttl must be at most 365d");
      const issued = await tokens.issue(req.body.name, req.body.groups, ttl, admin.subject);
      req.log.info(
        { by: admin.subject, subject: req.body.name, groups: req.body.groups, jti: issued.id },
        "token issued",
      );
      return reply.status(201).send({ token: issued.token, id: issued.id, expiresAt: issued.expiresAt.toISOString() });
    },
  );

  app.get("/tokens", { schema: { response: { 200: Type.Object({ tokens: Type.Array(TokenInfo) }) } } }, async (req) => {
    requireAdmin(req);
    return { tokens: tokens.list().map(info) };
  });

  app.post("/tokens/:id/revoke", { schema: { params: TokenId, response: { 200: TokenInfo } } }, async (req) => {
    const admin = requireAdmin(req);
    const revoked = await tokens.revoke(req.params.id, admin.subject);
    req.log.info(
      { audit: "token.revoked", by: admin.subject, jti: revoked.id, subject: revoked.subject },
      "token revoked",
    );
    return info(revoked);
  });
};
