import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { VigilError } from "../../../../lib/errors.js";
import { compilePolicy, type PolicyConnection } from "../../../../lib/policy/compile.js";
import { evaluate, preparePolicy } from "../../../../lib/policy/evaluate.js";
import { parseCommand } from "../../../../lib/policy/parse-command.js";
import type { Identity } from "../../identity/identity.js";
import type { PolicyStore } from "../../policy/store.js";
import type { RelayRegistry } from "../../relays/registry.js";

const PolicyTest = Type.Object(
  {
    subject: Type.String({ minLength: 1 }),
    groups: Type.Array(Type.String(), { default: [] }),
    connection: Type.String({ minLength: 1 }),
    command: Type.Optional(Type.String()),
    /** Describe a connection the fleet does not serve (yet); otherwise taken from the relays. */
    type: Type.Optional(Type.Enum(["postgres", "ssh", "http", "kubernetes", "tcp"])),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    segment: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

/** POST /policy/test: what the relay would decide, computed by the same compiler and evaluator. */
export const policyRoutes: FastifyPluginAsyncTypebox<{
  policies: PolicyStore;
  registry: RelayRegistry;
  requireAdmin: (req: FastifyRequest) => Identity;
}> = async (app, { policies, registry, requireAdmin }) => {
  app.post("/policy/test", { schema: { body: PolicyTest } }, async (req) => {
    requireAdmin(req);
    const body = req.body;
    const known = registry.connections().find((c) => c.name === body.connection);
    if (!known && !body.type) {
      throw new VigilError(
        "unknown_connection",
        `no relay serves "${body.connection}"; pass its type (and labels) to test it anyway`,
      );
    }
    const connection: PolicyConnection = {
      name: body.connection,
      type: body.type ?? known!.type,
      labels: body.labels ?? known?.labels ?? {},
      segment: body.segment ?? known?.segments[0] ?? "",
    };
    const compiled = compilePolicy(policies.current, { subject: body.subject, groups: body.groups }, connection);
    const decision =
      body.command === undefined
        ? undefined
        : evaluate(preparePolicy(compiled), await parseCommand(connection.type, body.command));
    return { connection, connect: { granted: compiled.connect, by: compiled.grantedBy }, decision };
  });
};
