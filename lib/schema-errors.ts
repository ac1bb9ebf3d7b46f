import type { Value } from "typebox/value";

export type SchemaError = ReturnType<typeof Value.Errors>[number];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Turn a TypeBox validation error into a key path and one human sentence, shared by the config
 * loader and the policy loader so both speak the same way ("expected one of …", "unknown key").
 * `patterns` maps a schema regex to the words users should see instead of the regex.
 */
export function explainSchemaError(
  e: SchemaError,
  root: unknown,
  patterns: Record<string, string> = {},
): { path: string[]; detail: string } {
  const path = e.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  let got = at(root, path);
  let detail: string;
  switch (e.keyword) {
    case "boolean": // additionalProperties: false reports the extra key itself first
      detail = "unknown key";
      got = undefined;
      break;
    case "additionalProperties":
      path.push(e.params.additionalProperties[0] ?? "?");
      detail = "unknown key";
      got = undefined;
      break;
    case "required":
      path.push(e.params.requiredProperties[0] ?? "?");
      detail = "required";
      got = undefined;
      break;
    case "type":
      detail = `expected ${String(e.params.type)}`;
      break;
    case "enum":
      detail = `expected one of ${e.params.allowedValues.join(", ")}`;
      break;
    case "pattern":
      detail = `expected ${patterns[String(e.params.pattern)] ?? `a string matching ${String(e.params.pattern)}`}`;
      break;
    case "minLength":
      detail = e.params.limit === 1 ? "expected a non-empty string" : `expected at least ${e.params.limit} characters`;
      break;
    case "minimum":
    case "maximum":
      detail = `expected ${e.params.comparison} ${e.params.limit}`;
      break;
    default:
      detail = e.message;
  }
  if (got !== undefined) detail += ` (got ${truncate(JSON.stringify(got))})`;
  return { path, detail };
}

function at(root: unknown, path: string[]): unknown {
  let node = root;
  for (const seg of path) node = isObj(node) || Array.isArray(node) ? (node as Obj)[seg] : undefined;
  return node;
}

/** ["relay", "connections", "0", "type"] → "relay.connections[0].type". */
export function formatKey(path: string[]): string {
  return path.reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), "");
}

const truncate = (s: string | undefined) =>
  s === undefined ? "undefined" : s.length > 60 ? `${s.slice(0, 57)}...` : s;
