import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import { parseDuration } from "../../../../lib/duration.js";
import { VigilError } from "../../../../lib/errors.js";
import type { ApprovalService } from "../../approvals/service.js";
import { effectiveStatus } from "../../approvals/types.js";
import type { Identity } from "../../identity/identity.js";
import type { RelayRegistry } from "../../relays/registry.js";

const Decision = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 2000 })) },
  { additionalProperties: false },
);
const AccessRequest = Type.Object(
  {
    connection: Type.String({ minLength: 1 }),
    duration: Type.String({ pattern: "^\\d+[smhd]?$" }),
    reason: Type.String({ minLength: 1, maxLength: 2000 }),
  },
  { additionalProperties: false },
);

/** Approvals (list, decide, live stream) and time-bounded access requests. */
export const approvalRoutes: FastifyPluginAsyncTypebox<{
  approvals: ApprovalService;
  registry: RelayRegistry;
  isAdmin: (identity: Identity) => boolean;
}> = async (app, { approvals, registry, isAdmin }) => {
  const me = (req: FastifyRequest) => req.identity!;

  app.get(
    "/approvals",
    {
      schema: {
        querystring: Type.Object({
          status: Type.Optional(Type.Enum(["pending", "approved", "denied", "expired", "cancelled"])),
        }),
      },
    },
    async (req) => ({
      approvals: approvals.list(me(req), isAdmin(me(req)), req.query.status),
    }),
  );

  app.get("/approvals/:id", { schema: { params: Type.Object({ id: Type.String() }) } }, async (req) => {
    const rec = approvals.list(me(req), isAdmin(me(req))).find((r) => r.id === req.params.id);
    if (!rec) throw new VigilError("not_found", `no approval ${req.params.id}`);
    return rec;
  });

  for (const verdict of ["approve", "deny"] as const) {
    app.post(
      `/approvals/:id/${verdict}`,
      { schema: { params: Type.Object({ id: Type.String() }), body: Type.Optional(Decision) } },
      async (req) => {
        const rec = await approvals.decide(req.params.id, me(req), verdict, req.body?.reason);
        return { ...rec, effectiveStatus: effectiveStatus(rec) };
      },
    );
  }

  /** Server-sent events: every change to an approval this caller may see, as it happens. */
  app.get("/approvals/stream", (req, reply) => {
    const who = me(req);
    const admin = isAdmin(who);
    reply.hijack();
    reply.raw.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    reply.raw.write(": vigil approvals\n\n");
    const onChange = () => {
      // Re-read through list() so the same visibility rules apply as to GET /approvals.
      for (const rec of approvals.list(who, admin)) {
        const key = `${rec.id}:${rec.effectiveStatus}:${rec.decisions.length}`;
        if (sent.has(key)) continue;
        sent.add(key);
        reply.raw.write(`event: approval\nid: ${key}\ndata: ${JSON.stringify(rec)}\n\n`);
      }
    };
    const sent = new Set(approvals.list(who, admin).map((r) => `${r.id}:${r.effectiveStatus}:${r.decisions.length}`));
    approvals.on("change", onChange);
    const ping = setInterval(() => reply.raw.write(": ping\n\n"), 15_000);
    req.raw.on("close", () => {
      clearInterval(ping);
      approvals.off("change", onChange);
    });
  });

  app.post("/access", { schema: { body: AccessRequest } }, async (req, reply) => {
    const known = registry.connections().find((c) => c.name === req.body.connection);
    if (!known) throw new VigilError("unknown_connection", `no relay serves "${req.body.connection}"`);
    let seconds: number;
    try {
      seconds = parseDuration(req.body.duration);
    } catch (err) {
      throw new VigilError("bad_request", (err as Error).message);
    }
    const rec = await approvals.requestAccess(
      me(req),
      { name: known.name, type: known.type, labels: known.labels, segment: known.segments[0] ?? "" },
      seconds * 1000,
      req.body.reason,
    );
    return reply.status(201).send({ ...rec, effectiveStatus: effectiveStatus(rec) });
  });
};
