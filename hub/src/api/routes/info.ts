import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";

export const HubInfoSchema = Type.Object({
  version: Type.String(),
  hubId: Type.String(),
  grpc: Type.Object({ address: Type.String(), tls: Type.Boolean() }),
  listen: Type.Record(Type.String(), Type.String()),
  /** The SSH jump host's public host key, for known_hosts (`vigil ssh-config`). */
  ssh: Type.Optional(Type.Object({ hostKey: Type.String() })),
  /** Issuers humans can log in with (`vigil login`, the web UI): those configured with a clientId. */
  oidc: Type.Optional(Type.Array(Type.Object({ issuer: Type.String(), clientId: Type.String() }))),
});
export type HubInfo = Type.Static<typeof HubInfoSchema>;

/** Unauthenticated: the CLI learns every other address of the hub from here. */
export const infoRoutes: FastifyPluginAsyncTypebox<{ info: () => HubInfo }> = async (app, { info }) => {
  app.get("/info", { schema: { response: { 200: HubInfoSchema } } }, async (req) => {
    const current = info();
    // A hub bound to a wildcard address advertises the host name the caller used to reach it.
    const host = req.hostname.replace(/:\d+$/, "");
    return {
      ...current,
      grpc: { ...current.grpc, address: current.grpc.address.replace(/^(0\.0\.0\.0|\[::\])/, host) },
    };
  });
};
