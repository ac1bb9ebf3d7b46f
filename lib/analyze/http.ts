import type { HttpCommand, KubernetesRequest } from "../policy/command.js";

/*
 * HTTP request analysis: a normalized path, and for Kubernetes API paths the RBAC request attributes, computed
 * like k8s.io/apiserver's RequestInfoFactory. Policy is evaluated on the normalized path, so a relay must
 * forward that path (re-encoded), not the raw one: the API server neither resolves ".." nor collapses "//",
 * and it decodes %2F into a separator.
 */

const utf8 = new TextDecoder("utf-8", { fatal: true });

const METHOD_VERBS: Readonly<Record<string, string>> = {
  GET: "get",
  HEAD: "get",
  POST: "create",
  PUT: "update",
  PATCH: "patch",
  DELETE: "delete",
};

/** Subresources that open a stream into a pod: RBAC requires "create" whether they arrive by POST or GET. */
const CONNECT_SUBRESOURCES = new Set(["exec", "attach", "portforward"]);
/** Namespace subresources (/api/v1/namespaces/{ns}/status) rather than resources inside the namespace. */
const NAMESPACE_SUBRESOURCES = new Set(["status", "finalize"]);

export function analyzeHttp(method: string, rawPath: string): HttpCommand {
  const upper = method.toUpperCase();
  let target = rawPath;
  const scheme = target.startsWith("http://") ? 7 : target.startsWith("https://") ? 8 : 0;
  if (scheme > 0) {
    // absolute-form request target: drop scheme and authority
    let end = target.length;
    for (const c of "/?#") {
      const i = target.indexOf(c, scheme);
      if (i >= 0 && i < end) end = i;
    }
    target = target.slice(end);
  }
  const q = target.indexOf("?");
  const rawPathOnly = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q + 1);
  const { path, problem } = normalizePath(rawPathOnly);
  const cmd: HttpCommand = { protocol: "http", method: upper, path, query, text: `${upper} ${rawPath}` };
  if (problem) cmd.parseError = problem;
  const kubernetes = kubernetesRequest(upper, path, query);
  if (kubernetes) cmd.kubernetes = kubernetes;
  return cmd;
}

/** Percent-decodes each segment and removes dot segments and empty segments (RFC 3986 5.2.4, plus "//"). */
function normalizePath(raw: string): { path: string; problem?: string } {
  let problem = raw.startsWith("/") || raw === "*" || raw === "" ? undefined : "request target is not an absolute path";
  const out: string[] = [];
  const segments = raw.split("/");
  let trailingSlash = false;
  for (const segment of segments) {
    const decoded = decodeSegment(segment);
    problem ??= decoded.problem;
    const text = decoded.text;
    trailingSlash = text === "" || text === "." || text === "..";
    if (text === "..") out.pop();
    else if (text !== "" && text !== ".") out.push(text);
  }
  const path = "/" + out.join("/") + (trailingSlash && out.length > 0 ? "/" : "");
  return problem ? { path, problem } : { path };
}

function isHex(c: string | undefined): boolean {
  return c !== undefined && ((c >= "0" && c <= "9") || (c >= "a" && c <= "f") || (c >= "A" && c <= "F"));
}

/**
 * Decodes %XX sequences as UTF-8, except "/", "%" and control characters, which stay encoded (upper-case hex)
 * so that a "%" in a normalized path always starts an encoded byte and a segment never splits in two.
 */
function decodeSegment(segment: string): { text: string; problem?: string } {
  if (!segment.includes("%")) return { text: segment };
  let text = "";
  let problem: string | undefined;
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length === 0) return;
    try {
      text += utf8.decode(Uint8Array.from(bytes));
    } catch {
      problem ??= "invalid UTF-8 in percent-encoded path";
      text += bytes.map((b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join("");
    }
    bytes = [];
  };
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c !== "%") {
      flush();
      text += c;
    } else if (isHex(segment[i + 1]) && isHex(segment[i + 2])) {
      const hex = segment.slice(i + 1, i + 3).toUpperCase();
      const b = parseInt(hex, 16);
      i += 2;
      if (b === 0x2f || b === 0x25 || b < 0x20 || b === 0x7f) {
        flush();
        text += "%" + hex;
        if (b === 0x2f) problem ??= "encoded slash (%2F) in path";
        else if (b !== 0x25) problem ??= "encoded control character in path";
      } else bytes.push(b);
    } else {
      flush();
      text += "%25";
      problem ??= "invalid percent-encoding in path";
    }
  }
  flush();
  return problem ? { text, problem } : { text };
}

/** RBAC request attributes for /api/{version}/… and /apis/{group}/{version}/… resource paths. */
function kubernetesRequest(method: string, path: string, query: string): KubernetesRequest | undefined {
  let parts = path.split("/").filter((p) => p !== "");
  const prefix = parts[0];
  if (parts.length < 3 || (prefix !== "api" && prefix !== "apis")) return undefined;
  parts = parts.slice(1);
  let group = "";
  if (prefix === "apis") {
    if (parts.length < 3) return undefined; // /apis/{group}/{version}: discovery, not a resource
    group = parts[0]!;
    parts = parts.slice(1);
  }
  parts = parts.slice(1); // version
  let verb = METHOD_VERBS[method] ?? method.toLowerCase();
  if (parts[0] === "watch" || parts[0] === "proxy") {
    // legacy /api/v1/watch/… and /api/v1/proxy/… forms
    if (parts.length < 2) return undefined;
    verb = parts[0];
    parts = parts.slice(1);
  }
  let namespace: string | undefined;
  if (parts[0] === "namespaces" && parts.length > 1) {
    namespace = parts[1];
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const resource = parts[0] ?? "";
  let name = parts[1];
  const subresource = verb === "proxy" ? undefined : parts[2];
  if (name === undefined && verb === "get") {
    const params = new URLSearchParams(query);
    verb = isWatch(params.get("watch")) ? "watch" : "list";
    name = nameFromFieldSelector(params.get("fieldSelector"));
  }
  if (name === undefined && verb === "delete") verb = "deletecollection";
  if (
    subresource &&
    resource === "pods" &&
    CONNECT_SUBRESOURCES.has(subresource) &&
    (method === "GET" || method === "POST")
  ) {
    verb = "create"; // websocket GETs are authorized like kubectl's POST
  }
  const request: KubernetesRequest = { verb, resource: subresource ? `${resource}/${subresource}` : resource, group };
  if (namespace !== undefined) request.namespace = namespace;
  if (name !== undefined) request.name = name;
  return request;
}

/** As metav1's bool conversion: any value but "", "0" and "false" means true. */
function isWatch(value: string | null): boolean {
  return value !== null && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}

/** `fieldSelector=metadata.name=x` names the object a list or watch is limited to (RBAC resourceNames). */
function nameFromFieldSelector(selector: string | null): string | undefined {
  if (!selector || selector.includes("\\")) return undefined; // escaped values: leave the request unnamed
  for (const term of selector.split(",")) {
    const m = /^\s*metadata\.name\s*==?\s*([^=!\s]*)\s*$/.exec(term);
    const name = m?.[1];
    if (name && name !== "." && name !== ".." && !name.includes("/") && !name.includes("%")) return name;
  }
  return undefined;
}
