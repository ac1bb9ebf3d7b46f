import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { parseDuration } from "../../../../lib/duration.js";
import type { Identity } from "../../identity/identity.js";
import type { LocalTokens } from "../../identity/local-tokens.js";
import { BadRequest } from "../errors.js";

const CreateToken = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$" }),
    groups: Type.Array(Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$" }), { default: [], maxItems: 64 }),
    ttl: Type.String({ default: "1h", description: "30m, 1h, 7d" }),
  },
  { additionalProperties: false },
);

const MAX_TTL_SECONDS = 365 * 86400;

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
      const issued = await tokens.issue(req.body.name, req.body.groups, ttl);
      req.log.info(
        { by: admin.subject, subject: req.body.name, groups: req.body.groups, jti: issued.id },
        "token issued",
      );
      return reply.status(201).send({ token: issued.token, id: issued.id, expiresAt: issued.expiresAt.toISOString() });
    },
  );
};
