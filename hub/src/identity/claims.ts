import type { JWTPayload } from "jose";
import { refused } from "./token-errors.js";

/**
 * A claim by name. An exact key wins (namespaced claims like "https://example.com/groups" contain dots);
 * otherwise a dotted name walks nested objects ("realm_access.roles").
 */
export function claim(payload: Record<string, unknown>, name: string): unknown {
  if (name in payload) return payload[name];
  let node: unknown = payload;
  for (const part of name.split(".")) {
    if (typeof node !== "object" || node === null || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Groups from an array of strings, or one string separated by spaces or commas. */
export function groupsFrom(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((g): g is string => typeof g === "string" && g !== "");
  if (typeof value === "string") return value.split(/[\s,]+/).filter(Boolean);
  return [];
}

export function usernameFrom(payload: JWTPayload | Record<string, unknown>, name: string): string {
  const value = claim(payload, name);
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "number") return String(value);
  throw refused(`token has no "${name}" claim to name the user (identity.oidc[].usernameClaim)`);
}
