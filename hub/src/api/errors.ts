import createError from "@fastify/error";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { VigilError, type VigilErrorCode } from "../../../lib/errors.js";

export const Unauthenticated = createError<[string]>("VIGIL_ERR_UNAUTHENTICATED", "%s", 401);
export const Forbidden = createError<[string]>("VIGIL_ERR_FORBIDDEN", "%s", 403);
export const BadRequest = createError<[string]>("VIGIL_ERR_BAD_REQUEST", "%s", 400);

const STATUS: Partial<Record<VigilErrorCode, number>> = {
  bad_token: 401,
  forbidden: 403,
  unknown_connection: 404,
  bad_request: 400,
  not_found: 404,
  conflict: 409,
  relay_unavailable: 503,
  recording_unavailable: 503,
};

/** Every error leaves the API as `{error: {code, message}}` with a proper status. */
export function errorHandler(err: FastifyError | VigilError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (err instanceof VigilError) {
    const status = STATUS[err.code] ?? 500;
    void reply.status(status).send({ error: { code: `VIGIL_ERR_${err.code.toUpperCase()}`, message: err.message } });
    return;
  }
  const fe = err as FastifyError;
  if (fe.validation) {
    void reply.status(400).send({ error: { code: "VIGIL_ERR_VALIDATION", message: fe.message } });
    return;
  }
  const status = fe.statusCode && fe.statusCode >= 400 ? fe.statusCode : 500;
  if (status >= 500) req.log.error({ err }, "request failed");
  const code = fe.code?.startsWith("VIGIL_ERR_") ? fe.code : status >= 500 ? "VIGIL_ERR_INTERNAL" : "VIGIL_ERR_REQUEST";
  void reply.status(status).send({ error: { code, message: status >= 500 ? "internal error" : fe.message } });
}
