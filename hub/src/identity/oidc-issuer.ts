import { createRemoteJWKSet } from "jose";
import * as oidc from "openid-client";
import type { OidcConfig } from "../../../lib/config/schema.js";
import type { Logger } from "../../../lib/log.js";
import { refused } from "./token-errors.js";

export type RemoteJwks = ReturnType<typeof createRemoteJWKSet>;

/** What discovery yields: the IdP's metadata and its keys (fetched lazily, cached, refreshed on unknown kid). */
export interface Discovered {
  server: oidc.ServerMetadata;
  jwks: RemoteJwks;
}

const DISCOVERY_TIMEOUT_SECONDS = 5;
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/**
 * One configured OIDC issuer, discovered lazily and retried with backoff: a down IdP never stops the
 * hub from starting; its tokens are refused with the discovery error until discovery succeeds.
 */
export class OidcIssuer {
  private discovered?: Discovered;
  private pending?: Promise<Discovered>;
  private lastError = "not discovered yet";
  private retryMs = FIRST_RETRY_MS;
  private nextAttemptAt = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly config: OidcConfig,
    private readonly log: Logger,
  ) {}

  get issuer(): string {
    return this.config.issuer;
  }

  /** Plain-http issuers are accepted (dev and test IdPs); HTTPS is what production should use. */
  get insecure(): boolean {
    return this.issuer.startsWith("http:");
  }

  /** Start discovering in the background, so the first token does not wait for it. */
  start(): void {
    if (this.insecure) this.log.warn({ issuer: this.issuer }, "OIDC issuer uses plain http");
    void this.attempt().catch(() => {});
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** The discovered issuer, or a bad_token refusal naming why this issuer cannot verify tokens yet. */
  async get(): Promise<Discovered> {
    if (this.discovered) return this.discovered;
    if (!this.pending && Date.now() < this.nextAttemptAt) throw this.unavailable();
    try {
      return await this.attempt();
    } catch {
      throw this.unavailable();
    }
  }

  /** An openid-client configuration for `clientId` against this issuer (login flows, introspection). */
  async client(clientId: string, secret?: string, auth?: oidc.ClientAuth): Promise<oidc.Configuration> {
    const { server } = await this.get();
    const config = new oidc.Configuration(server, clientId, secret, auth);
    if (this.insecure) oidc.allowInsecureRequests(config);
    return config;
  }

  private unavailable() {
    return refused(`cannot verify tokens of issuer "${this.issuer}" yet: OIDC discovery failed (${this.lastError})`);
  }

  private attempt(): Promise<Discovered> {
    this.pending ??= this.discover().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async discover(): Promise<Discovered> {
    try {
      const config = await oidc.discovery(new URL(this.issuer), "vigil-hub", undefined, undefined, {
        execute: this.insecure ? [oidc.allowInsecureRequests] : [],
        timeout: DISCOVERY_TIMEOUT_SECONDS,
      });
      const server = config.serverMetadata();
      if (!server.jwks_uri) throw new Error("the discovery document has no jwks_uri");
      this.discovered = { server, jwks: createRemoteJWKSet(new URL(server.jwks_uri)) };
      this.log.info({ issuer: this.issuer }, "OIDC issuer discovered");
      return this.discovered;
    } catch (err) {
      this.lastError = describe(err);
      this.nextAttemptAt = Date.now() + this.retryMs;
      this.log.warn({ issuer: this.issuer, reason: this.lastError, retryMs: this.retryMs }, "OIDC discovery failed");
      if (!this.closed) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.attempt().catch(() => {}), this.retryMs);
        this.timer.unref();
      }
      this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
      throw err;
    }
  }
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${(err.cause as NodeJS.ErrnoException).code ?? err.cause.message}` : "";
  return `${err.message}${cause}`;
}
