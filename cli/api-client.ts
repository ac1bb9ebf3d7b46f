import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** Options every client command shares: where the hub is and who we are. */
export interface ClientOptions {
  hub: string;
  token?: string;
  ca?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Call the hub's REST API; an error answer becomes an ApiError carrying the hub's code and message. */
export function apiRequest<T>(opts: ClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  const url = new URL(path, opts.hub.endsWith("/") ? opts.hub : opts.hub + "/");
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (payload) headers["content-type"] = "application/json";
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<T>((resolve, reject) => {
    const req = send(url, { method, headers, ca: opts.ca ? readFileSync(opts.ca) : undefined }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          return reject(
            new ApiError(
              res.statusCode ?? 0,
              "VIGIL_ERR_BAD_RESPONSE",
              `hub answered with non-JSON: ${text.slice(0, 200)}`,
            ),
          );
        }
        if ((res.statusCode ?? 500) >= 400) {
          const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
          return reject(
            new ApiError(
              res.statusCode ?? 500,
              err?.code ?? "VIGIL_ERR_HTTP",
              err?.message ?? `HTTP ${res.statusCode}`,
            ),
          );
        }
        resolve(json as T);
      });
    });
    req.on("error", (err) =>
      reject(new ApiError(0, "VIGIL_ERR_UNREACHABLE", `cannot reach the hub at ${opts.hub}: ${err.message}`)),
    );
    req.end(payload);
  });
}
