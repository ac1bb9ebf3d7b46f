import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { RelayRegistry } from "../../relays/registry.js";

const Relay = Type.Object({
  id: Type.String(),
  segment: Type.String(),
  version: Type.String(),
  status: Type.Union([Type.Literal("online"), Type.Literal("draining"), Type.Literal("offline")]),
  connections: Type.Array(
    Type.Object({ name: Type.String(), type: Type.String(), labels: Type.Record(Type.String(), Type.String()) }),
  ),
  connectedAt: Type.String(),
  lastSeen: Type.String(),
  activeSessions: Type.Integer(),
});

export const relayRoutes: FastifyPluginAsyncTypebox<{ registry: RelayRegistry }> = async (app, { registry }) => {
  app.get("/relays", { schema: { response: { 200: Type.Object({ relays: Type.Array(Relay) }) } } }, async () => ({
    relays: registry.list(),
  }));
};
