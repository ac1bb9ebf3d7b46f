import cookie from "@fastify/cookie";
import swagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import type { Logger } from "../../../lib/log.js";
import type { Authenticator, Identity } from "../identity/identity.js";
import type { LocalTokens } from "../identity/local-tokens.js";
import type { WebLogin } from "../identity/web-login.js";
import type { ApprovalService } from "../approvals/service.js";
import type { PolicyStore } from "../policy/store.js";
import type { RelayRegistry } from "../relays/registry.js";
import type { Recordings } from "../recordings/service.js";
import { errorHandler, Forbidden } from "./errors.js";
import { authenticate, authRoutes } from "./routes/auth.js";
import { connectionRoutes } from "./routes/connections.js";
import { infoRoutes, type HubInfo } from "./routes/info.js";
import { approvalRoutes } from "./routes/approvals.js";
import { policyRoutes } from "./routes/policy.js";
import { relayRoutes } from "./routes/relays.js";
import { exportRoutes, ingestRoutes, sessionRoutes } from "./routes/sessions.js";
import { sshKeyRoutes } from "./routes/ssh-keys.js";
import { tokenRoutes } from "./routes/tokens.js";
import type { SshKeyStore } from "../ssh-keys/store.js";

export interface ApiDeps {
  auth: Authenticator;
  tokens: LocalTokens;
  web: WebLogin;
  registry: RelayRegistry;
  policies: PolicyStore;
  approvals: ApprovalService;
  recordings: Recordings;
  sshKeys: SshKeyStore;
  info: () => HubInfo;
  log: Logger;
}

declare module "fastify" {
  interface FastifyRequest {
    identity?: Identity;
  }
}

export type Api = FastifyInstance;

/** The REST API: external plugins, then auth, then one route module per resource. */
export async function buildApi(deps: ApiDeps, https?: { cert: Buffer; key: Buffer }): Promise<Api> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: "api" }) as FastifyBaseLogger,
    https: https ?? null,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setErrorHandler(errorHandler);
  await app.register(cookie);
  await app.register(swagger, {
    openapi: { info: { title: "Vigil hub API", version: "1" } },
  });

  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  app.get("/api/v1/openapi.json", { schema: { hide: true } }, async () => app.swagger());

  await app.register(infoRoutes, {
    prefix: "/api/v1",
    info: () => ({ ...deps.info(), oidc: deps.web.loginIssuers() }),
  });
  await app.register(authRoutes, { prefix: "/api/v1", auth: deps.auth, web: deps.web });
  await app.register(
    async (scoped) => {
      scoped.addHook("onRequest", async (req) => {
        req.identity = await authenticate(deps.auth, req);
      });
      await scoped.register(relayRoutes, { registry: deps.registry });
      await scoped.register(connectionRoutes, { registry: deps.registry });
      await scoped.register(approvalRoutes, {
        approvals: deps.approvals,
        registry: deps.registry,
        isAdmin: (who) => deps.auth.isAdmin(who),
      });
      await scoped.register(policyRoutes, {
        policies: deps.policies,
        registry: deps.registry,
        requireAdmin: (req) => requireAdmin(deps.auth, req),
      });
      await scoped.register(sessionRoutes, {
        recordings: deps.recordings,
        isAdmin: (who) => deps.auth.isAdmin(who),
      });
      await scoped.register(ingestRoutes, {
        recordings: deps.recordings,
        requireAdmin: (req) => requireAdmin(deps.auth, req),
      });
      await scoped.register(exportRoutes, {
        recordings: deps.recordings,
        requireAdmin: (req) => requireAdmin(deps.auth, req),
      });
      await scoped.register(sshKeyRoutes, { keys: deps.sshKeys, isAdmin: (who) => deps.auth.isAdmin(who) });
      await scoped.register(tokenRoutes, { tokens: deps.tokens, requireAdmin: (req) => requireAdmin(deps.auth, req) });
    },
    { prefix: "/api/v1" },
  );
  return app;
}

function requireAdmin(auth: Authenticator, req: FastifyRequest): Identity {
  const identity = req.identity!;
  if (!auth.isAdmin(identity)) throw new Forbidden(`${identity.subject} is not in an admin group`);
  return identity;
}
