import createError from "@fastify/error";
import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { VigilError } from "../../../../lib/errors.js";
import type { Authenticator, Identity } from "../../identity/identity.js";
import type { WebLogin } from "../../identity/web-login.js";

export const SESSION_COOKIE = "vigil_session";
const LOGIN_COOKIE = "vigil_login";
const CALLBACK_PATH = "/api/v1/auth/callback";

const IdpUnavailable = createError<[string]>("VIGIL_ERR_IDP_UNAVAILABLE", "%s", 503);

/** Who is calling the API: a Bearer token wins; a browser's session cookie otherwise. */
export function authenticate(auth: Authenticator, req: FastifyRequest): Promise<Identity> {
  const session = req.cookies[SESSION_COOKIE];
  if (!req.headers.authorization && session) return auth.verifySession(session);
  return auth.verifyBearer(req.headers.authorization);
}

const Me = Type.Object({
  subject: Type.String(),
  groups: Type.Array(Type.String()),
  issuer: Type.String(),
  expiresAt: Type.Optional(Type.String()),
  admin: Type.Boolean(),
});

/** Browser login (authorization code + PKCE at the IdP → session cookie), logout, and who-am-I. */
export const authRoutes: FastifyPluginAsyncTypebox<{ auth: Authenticator; web: WebLogin }> = async (
  app,
  { auth, web },
) => {
  app.get(
    "/auth/login",
    {
      schema: {
        querystring: Type.Object({
          issuer: Type.Optional(Type.String()),
          returnTo: Type.Optional(Type.String({ pattern: "^/(?![/\\\\])", description: "a path on this hub" })),
        }),
      },
    },
    async (req, reply) => {
      let login: Awaited<ReturnType<WebLogin["begin"]>>;
      try {
        login = await web.begin(req.query.issuer, redirectUri(web, req), req.query.returnTo ?? "/");
      } catch (err) {
        if (err instanceof VigilError && err.code === "bad_token") throw new IdpUnavailable(err.message);
        throw err;
      }
      setCookie(reply, req, web, LOGIN_COOKIE, login.state, { path: "/api/v1/auth", maxAge: 600 });
      return reply.redirect(login.url.toString(), 302);
    },
  );

  app.get("/auth/callback", { schema: { hide: true } }, async (req, reply) => {
    const query = req.url.includes("?") ? req.url.slice(req.url.indexOf("?")) : "";
    const session = await web.complete(new URL(redirectUri(web, req) + query), req.cookies[LOGIN_COOKIE]);
    void reply.clearCookie(LOGIN_COOKIE, { path: "/api/v1/auth" });
    const maxAge = Math.floor((session.expiresAt.getTime() - Date.now()) / 1000);
    setCookie(reply, req, web, SESSION_COOKIE, session.token, { path: "/", maxAge });
    return reply.redirect(session.returnTo, 302);
  });

  app.post("/auth/logout", async (req, reply) => {
    const cookie = req.cookies[SESSION_COOKIE];
    if (cookie) {
      const identity = await auth.verifySession(cookie).catch(() => undefined);
      if (identity) await web.end(identity);
    }
    void reply.clearCookie(SESSION_COOKIE, { path: "/" });
    return reply.status(204).send();
  });

  app.get("/auth/me", { schema: { response: { 200: Me } } }, async (req) => {
    const identity = await authenticate(auth, req);
    return {
      subject: identity.subject,
      groups: identity.groups,
      issuer: identity.issuer,
      expiresAt: identity.expiresAt?.toISOString(),
      admin: auth.isAdmin(identity),
    };
  });
};

function redirectUri(web: WebLogin, req: FastifyRequest): string {
  const base = web.publicUrl ?? `${req.protocol}://${req.host}`;
  return base.replace(/\/+$/, "") + CALLBACK_PATH;
}

function setCookie(
  reply: FastifyReply,
  req: FastifyRequest,
  web: WebLogin,
  name: string,
  value: string,
  opts: { path: string; maxAge: number },
): void {
  // Behind a TLS-terminating proxy the hub sees http; the public URL says what the browser uses.
  const secure = req.protocol === "https" || (web.publicUrl?.startsWith("https:") ?? false);
  void reply.setCookie(name, value, { ...opts, httpOnly: true, sameSite: "lax", secure });
}
