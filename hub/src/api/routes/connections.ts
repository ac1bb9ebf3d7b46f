import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { RelayRegistry } from "../../relays/registry.js";

const Connection = Type.Object({
  name: Type.String(),
  type: Type.String(),
  labels: Type.Record(Type.String(), Type.String()),
  relays: Type.Array(Type.String()),
  segments: Type.Array(Type.String()),
  available: Type.Boolean(),
  /** ssh connections: the host keys their relays present (known_hosts lines for `vigil ssh-config`). */
  sshHostKeys: Type.Array(Type.String()),
});

export const connectionRoutes: FastifyPluginAsyncTypebox<{ registry: RelayRegistry }> = async (app, { registry }) => {
  app.get(
    "/connections",
    { schema: { response: { 200: Type.Object({ connections: Type.Array(Connection) }) } } },
    async () => ({
      connections: registry.connections(),
    }),
  );
};
