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

/**
 * GET an NDJSON endpoint and yield one parsed object per line as they arrive, without holding
 * the whole answer (an export can be millions of events). An error answer throws an ApiError.
 */
export async function* apiLines<T>(opts: ClientOptions, path: string): AsyncGenerator<T> {
  let rest = "";
  for await (const chunk of apiChunks(opts, path, "application/x-ndjson")) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) if (line) yield parseLine<T>(line);
  }
  if (rest) yield parseLine<T>(rest);
}

/** GET `path` and yield the answer's text as it arrives; an error answer throws an ApiError. */
async function* apiChunks(opts: ClientOptions, path: string, accept: string): AsyncGenerator<string> {
  const url = new URL(path, opts.hub.endsWith("/") ? opts.hub : opts.hub + "/");
  const headers: Record<string, string> = { accept };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  const res = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
    const req = send(url, { method: "GET", headers, ca: opts.ca ? readFileSync(opts.ca) : undefined }, resolve);
    req.on("error", (err) =>
      reject(new ApiError(0, "VIGIL_ERR_UNREACHABLE", `cannot reach the hub at ${opts.hub}: ${err.message}`)),
    );
    req.end();
  });
  if ((res.statusCode ?? 500) >= 400) {
    let text = "";
    for await (const c of res) text += String(c);
    let err: { code?: string; message?: string } | undefined;
    try {
      err = (JSON.parse(text) as { error?: typeof err }).error;
    } catch {
      // not JSON: use the status
    }
    throw new ApiError(res.statusCode ?? 500, err?.code ?? "VIGIL_ERR_HTTP", err?.message ?? `HTTP ${res.statusCode}`);
  }
  res.setEncoding("utf8");
  for await (const chunk of res) yield chunk as string;
}

function parseLine<T>(line: string): T {
  const value = JSON.parse(line) as T & { error?: { code: string; message: string } };
  // A stream that failed after its headers says so in its last line.
  if (value && typeof value === "object" && "error" in value && value.error && !("seq" in value)) {
    throw new ApiError(500, value.error.code, value.error.message);
  }
  return value;
}

/** GET a text answer (e.g. an asciicast file) as it is. */
export async function apiText(opts: ClientOptions, path: string): Promise<string> {
  let text = "";
  for await (const chunk of apiChunks(opts, path, "*/*")) text += chunk;
  return text;
}
