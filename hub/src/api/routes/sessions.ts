import { Type, type FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { RecordingEvent } from "../../../../lib/recording/chain.js";
import { toAsciicast } from "../../../../lib/recording/asciicast.js";
import { eventView } from "../../../../lib/recording/view.js";
import type { Identity } from "../../identity/identity.js";
import type { Recordings } from "../../recordings/service.js";
import { Forbidden } from "../errors.js";

const ISO = Type.String({ format: "date-time", description: "ISO 8601, e.g. 2026-11-22T08:00:00Z" });
const Id = Type.Object({ id: Type.String({ pattern: "^[A-Za-z0-9_.:-]{1,128}$" }) });

/** Filters shared by session and command search. */
const Filters = {
  user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  group: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  connection: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  segment: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  type: Type.Optional(Type.Enum(["postgres", "ssh", "http", "kubernetes", "tcp"])),
  from: Type.Optional(ISO),
  to: Type.Optional(ISO),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, description: "words that must all appear" })),
  decision: Type.Optional(Type.Enum(["allow", "deny", "review"])),
  sort: Type.Optional(Type.Enum(["asc", "desc"])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  cursor: Type.Optional(Type.String({ maxLength: 1000 })),
};

/** Events of one session are read from the store in pages of this many. */
const PAGE = 2000;

type Store = Awaited<ReturnType<Recordings["store"]>>;

/** One session's events after `afterSeq`, in seq order, a page at a time (a session may be long). */
async function* pages(store: Store, id: string, afterSeq: number) {
  for (let after = afterSeq; ;) {
    const page = await store.sessionEvents(id, { afterSeq: after, limit: PAGE });
    if (page.length > 0) yield page;
    if (page.length < PAGE) return;
    after = Number(page[page.length - 1]!.seq);
  }
}

/**
 * Forensic search, replay, verification and the live view. Admins see every session; anyone else
 * sees only the sessions they ran themselves.
 */
export const sessionRoutes: FastifyPluginAsyncTypebox<{
  recordings: Recordings;
  isAdmin: (identity: Identity) => boolean;
}> = async (app, { recordings, isAdmin }) => {
  /** The user filter a caller may use: their own subject unless they are an admin. */
  const scopeUser = (req: FastifyRequest, asked: string | undefined) => {
    const who = req.identity!;
    if (isAdmin(who)) return asked;
    if (asked && asked !== who.subject) throw new Forbidden(`${who.subject} may search only their own sessions`);
    return who.subject;
  };
  const visibleSession = async (req: FastifyRequest, id: string) => {
    const session = await recordings.session(id);
    const who = req.identity!;
    if (!isAdmin(who) && session.user !== who.subject) throw new Forbidden(`session ${id} is not yours to read`);
    return session;
  };

  app.get(
    "/sessions",
    {
      schema: {
        description: "Search recorded sessions across the fleet",
        querystring: Type.Object(
          { ...Filters, hasApproval: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const store = await recordings.store();
      return store.searchSessions({ ...req.query, user: scopeUser(req, req.query.user) });
    },
  );

  app.get(
    "/events",
    {
      schema: {
        description: "Search commands across the fleet",
        querystring: Type.Object(Filters, { additionalProperties: false }),
      },
    },
    async (req) => {
      const store = await recordings.store();
      const { events, next } = await store.searchEvents({ ...req.query, user: scopeUser(req, req.query.user) });
      return {
        events: events.map(({ event, ...hit }) => ({ ...hit, event: eventView(event) })),
        ...(next ? { next } : {}),
      };
    },
  );

  app.get("/sessions/:id", { schema: { params: Id } }, async (req) => visibleSession(req, req.params.id));

  app.get(
    "/sessions/:id/verify",
    { schema: { params: Id, description: "Recompute the hash chain and check the relay's signature" } },
    async (req) => {
      await visibleSession(req, req.params.id);
      const result = await recordings.verify(req.params.id);
      return result.ok
        ? { ok: true, events: result.events, relayId: result.relayId }
        : { ok: false, seq: result.seq, reason: result.reason, events: result.events, relayId: result.relayId };
    },
  );

  /**
   * NDJSON, one event per line in seq order, with each event's recorded time for playback; or, with
   * `format=asciicast`, the terminal output as an asciicast v2 file that asciinema plays.
   */
  app.get(
    "/sessions/:id/events",
    {
      schema: {
        params: Id,
        querystring: Type.Object(
          {
            afterSeq: Type.Optional(Type.Integer({ minimum: -1 })),
            format: Type.Optional(Type.Enum(["ndjson", "asciicast"])),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req, reply) => {
      await visibleSession(req, req.params.id);
      const store = await recordings.store();
      if (req.query.format === "asciicast") {
        const events: RecordingEvent[] = [];
        for await (const page of pages(store, req.params.id, -1)) events.push(...page);
        return reply.type("application/x-asciicast").send(toAsciicast(events));
      }
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "application/x-ndjson" });
      try {
        for await (const page of pages(store, req.params.id, req.query.afterSeq ?? -1)) {
          reply.raw.write(page.map((e) => JSON.stringify(eventView(e)) + "\n").join(""));
        }
      } catch (err) {
        // Headers are gone: say so in the stream rather than end it as if it were complete.
        reply.raw.write(
          JSON.stringify({ error: { code: "VIGIL_ERR_INTERNAL", message: (err as Error).message } }) + "\n",
        );
      }
      reply.raw.end();
    },
  );

  /** Server-sent events: what is stored so far, then each new event as it is recorded, until session_end. */
  app.get("/sessions/:id/live", { schema: { params: Id } }, async (req, reply) => {
    const id = req.params.id;
    const store = await recordings.store();
    const stored = await store.getSession(id);
    if (stored && !isAdmin(req.identity!) && stored.user !== req.identity!.subject) {
      throw new Forbidden(`session ${id} is not yours to read`);
    }
    if (!stored && !isAdmin(req.identity!)) {
      // Not stored yet: only admins may wait on a session nobody can attribute.
      throw new Forbidden(`session ${id} is not (yet) recorded; only admins may follow it`);
    }
    streamLive(reply, id, recordings, store);
  });
};

/** Every event in a time range, NDJSON in (time, session, seq) order, for a SIEM. Admins only. */
export const exportRoutes: FastifyPluginAsyncTypebox<{
  recordings: Recordings;
  requireAdmin: (req: FastifyRequest) => Identity;
}> = async (app, { recordings, requireAdmin }) => {
  app.get(
    "/export",
    { schema: { querystring: Type.Object({ from: ISO, to: ISO }, { additionalProperties: false }) } },
    async (req, reply) => {
      requireAdmin(req);
      const store = await recordings.store();
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "application/x-ndjson" });
      try {
        for await (const e of store.exportEvents({ from: req.query.from, to: req.query.to })) {
          if (!reply.raw.write(JSON.stringify(eventView(e)) + "\n")) {
            await new Promise<void>((r) => reply.raw.once("drain", () => r()));
          }
          if (reply.raw.destroyed) return;
        }
      } catch (err) {
        reply.raw.write(
          JSON.stringify({ error: { code: "VIGIL_ERR_INTERNAL", message: (err as Error).message } }) + "\n",
        );
      }
      reply.raw.end();
    },
  );
};

/** The ingest worker in this hub: how far behind the recording stream it is. */
export const ingestRoutes: FastifyPluginAsyncTypebox<{
  recordings: Recordings;
  requireAdmin: (req: FastifyRequest) => Identity;
}> = async (app, { recordings, requireAdmin }) => {
  app.get("/ingest", async (req) => {
    requireAdmin(req);
    const ingest = recordings.ingest;
    return ingest ? { running: true, ...ingest.status } : { running: false };
  });
};

function streamLive(reply: FastifyReply, id: string, recordings: Recordings, store: Store): void {
  reply.hijack();
  reply.raw.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  reply.raw.write(`: vigil live ${id}\n\n`);
  let next = 0; // the seq the viewer needs next: events go out in order, each once
  const early = new Map<number, RecordingEvent>(); // arrived live ahead of a gap
  const take = (e: RecordingEvent) => {
    const seq = Number(e.seq);
    if (seq < next || done) return;
    early.set(seq, e);
    for (let ev = early.get(next); ev; ev = early.get(next)) {
      early.delete(next++);
      const view = eventView(ev);
      reply.raw.write(`event: ${view.type}\nid: ${view.seq}\ndata: ${JSON.stringify(view)}\n\n`);
      if (ev.body?.$case === "sessionEnd") return finish();
    }
  };
  /** Fill from the store: what was recorded before the subscription, and gaps ingest closes later. */
  const catchUp = async () => {
    try {
      for await (const page of pages(store, id, next - 1)) {
        for (const e of page) take(e);
        if (done) break;
      }
    } catch {
      // The store is behind or away: the live feed still carries new events.
    }
  };
  // Subscribe first, then read what is stored: nothing falls between the two.
  const unsubscribe = recordings.live.subscribe(id, take);
  const timer = setInterval(() => {
    if (early.size > 0) void catchUp();
    else reply.raw.write(": keep-alive\n\n");
  }, 1000);
  let done = false;
  function finish() {
    if (done) return;
    done = true;
    unsubscribe();
    clearInterval(timer);
    reply.raw.end();
  }
  reply.raw.on("close", finish);
  void catchUp();
}
