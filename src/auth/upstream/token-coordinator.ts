import { DurableObject } from "cloudflare:workers";
import { edgeConfig } from "../../config/edge-config.ts";
import type { EdgeBindings } from "../../context.ts";
import type { SourceConfig } from "../../config/types.ts";
import { assertionKeys } from "./assertion-keys.ts";
import { sealGrant } from "./sealed-token.ts";
import { grantFingerprint, tokenKvKey } from "./token-key.ts";
import { discoverTokenUrl, requestToken, type OAuthAuth } from "./token-request.ts";
import { isFresh, processTokenResponse, type TokenGrant } from "./token-response.ts";

/** What a token request to the coordinator answers: never throws across RPC. */
export type TokenAnswer = { ok: true; grant: TokenGrant } | { ok: false; code: string; message: string };

export interface TokenStatus {
  /** Epoch ms; null when unknown or no token is held. */
  expiresAt: number | null;
  refreshAt: number | null;
  /** Token endpoint calls since this object was created. */
  fetches: number;
  lastFetchAt: number | null;
  lastError: string | null;
}

/** After a failed token fetch, callers get the same error, without a new call, for this long. */
export const FAILURE_BACKOFF_MS = 2_000;
/** KV's minimum `expirationTtl`: a token living less than this stays out of KV. */
export const KV_MIN_TTL_SECONDS = 60;
const TOKEN_TIMEOUT_MS = 10_000;

interface Stored {
  fingerprint: string;
  grant: TokenGrant;
}

/**
 * One per source (named by it): the only place that calls the source's token
 * endpoint, so there is one token fetch at a time per source across the whole
 * deployment. Concurrent callers share one fetch; a failure is remembered for
 * a short backoff, never longer. The grant lives in this object's storage (it
 * survives eviction) and, sealed with `TOKEN_CACHE_KEY`, in KV as the read
 * cache near each edge.
 * @see docs/upstream-auth.md#the-token-cache
 */
export class TokenCoordinator extends DurableObject<Env> {
  #stored: Stored | undefined;
  #tokenUrl: { fingerprint: string; url: string } | undefined;
  #pending: Promise<TokenAnswer> | undefined;
  #failure: { until: number; answer: TokenAnswer } | undefined;
  #fetches = 0;
  #lastFetchAt: number | null = null;
  #lastError: string | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.#stored = await ctx.storage.get<Stored>("grant");
      this.#fetches = (await ctx.storage.get<number>("fetches")) ?? 0;
    });
  }

  /** A fresh token for the source, fetching one only when the held one is due for refresh. */
  async token(sourceName: string): Promise<TokenAnswer> {
    const source = this.#source(sourceName);
    if (!source) return { ok: false, code: "source-misconfigured", message: `Source ${sourceName} has no OAuth configuration` };
    const fingerprint = await grantFingerprint(source);
    const now = Date.now();
    if (this.#stored?.fingerprint === fingerprint && isFresh(this.#stored.grant, now)) return { ok: true, grant: this.#stored.grant };
    if (this.#failure && now < this.#failure.until) return this.#failure.answer;
    this.#pending ??= this.#fetch(source, fingerprint).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  /** Drops `accessToken` if it is still the held one (an upstream refused it); a newer token is kept. */
  async invalidate(sourceName: string, accessToken: string): Promise<void> {
    if (this.#stored?.grant.accessToken !== accessToken) return;
    const fingerprint = this.#stored.fingerprint;
    this.#stored = undefined;
    await this.ctx.storage.delete("grant");
    await this.env.TOKEN_CACHE.delete(tokenKvKey(sourceName, fingerprint));
  }

  /** For `/status`: expiry and counters, never the token. */
  async status(): Promise<TokenStatus> {
    return {
      expiresAt: this.#stored?.grant.expiresAt ?? null,
      refreshAt: this.#stored?.grant.refreshAt ?? null,
      fetches: this.#fetches,
      lastFetchAt: this.#lastFetchAt,
      lastError: this.#lastError,
    };
  }

  #source(name: string): SourceConfig | undefined {
    const source = edgeConfig(this.env).sources.get(name);
    return source && (source.auth.kind === "client-credentials" || source.auth.kind === "jwt-assertion") ? source : undefined;
  }

  async #fetch(source: SourceConfig, fingerprint: string): Promise<TokenAnswer> {
    const auth = source.auth as OAuthAuth;
    const fail = (code: string, message: string): TokenAnswer => {
      const answer: TokenAnswer = { ok: false, code, message: `Source ${source.name}: ${message}` };
      this.#failure = { until: Date.now() + FAILURE_BACKOFF_MS, answer };
      this.#lastError = code;
      return answer;
    };

    const tokenUrl = await this.#resolveTokenUrl(source, auth, fingerprint);
    if (!tokenUrl) return fail("token-url-not-found", "no token_url is configured and none was found in SMART discovery or the CapabilityStatement");
    if (new URL(tokenUrl).protocol === "http:" && this.env.ALLOW_INSECURE_HTTP !== "true") {
      return fail("insecure-token-url", 'the token endpoint is plain http; allow it with ALLOW_INSECURE_HTTP = "true"');
    }
    let signingKey;
    if (auth.kind === "jwt-assertion") {
      try {
        signingKey = (await assertionKeys(source)!)[0];
      } catch {
        return fail("invalid-private-key", "private_key could not be imported for the configured alg");
      }
    }

    this.#fetches++;
    this.#lastFetchAt = Date.now();
    let response: Response;
    try {
      response = await requestToken(auth, tokenUrl, signingKey, (r) => fetch(r), Date.now(), TOKEN_TIMEOUT_MS);
    } catch {
      await this.ctx.storage.put("fetches", this.#fetches);
      return fail("token-endpoint-unreachable", "the token endpoint could not be reached");
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = undefined;
    }
    const processed = processTokenResponse(response.status, body, Date.now());
    await this.ctx.storage.put("fetches", this.#fetches);
    if (!processed.ok) {
      const f = processed.error;
      return f.reason === "refused"
        ? fail("token-endpoint-refused", `the token endpoint refused the edge's credentials (HTTP ${f.status}, ${f.error})`)
        : fail("token-endpoint-malformed", `the token endpoint's answer has no usable bearer access_token (HTTP ${"status" in f ? f.status : 0})`);
    }
    const grant = processed.value;
    this.#stored = { fingerprint, grant };
    this.#failure = undefined;
    this.#lastError = null;
    await this.ctx.storage.put("grant", this.#stored);
    await this.#writeKv(source.name, fingerprint, grant);
    return { ok: true, grant };
  }

  async #resolveTokenUrl(source: SourceConfig, auth: OAuthAuth, fingerprint: string): Promise<string | undefined> {
    if (auth.tokenUrl) return auth.tokenUrl;
    if (this.#tokenUrl?.fingerprint === fingerprint) return this.#tokenUrl.url;
    const url = await discoverTokenUrl(source.baseUrl, (r) => fetch(r), TOKEN_TIMEOUT_MS);
    if (url) this.#tokenUrl = { fingerprint, url };
    return url;
  }

  /** KV entries expire with the token; one too short-lived for KV's 60 s minimum stays out of it. */
  async #writeKv(sourceName: string, fingerprint: string, grant: TokenGrant): Promise<void> {
    const secret = (this.env as EdgeBindings).TOKEN_CACHE_KEY;
    if (typeof secret !== "string" || secret === "" || grant.expiresAt === null) return;
    const expiration = Math.floor(grant.expiresAt / 1000);
    if (expiration - Math.floor(Date.now() / 1000) < KV_MIN_TTL_SECONDS) return;
    const key = tokenKvKey(sourceName, fingerprint);
    try {
      await this.env.TOKEN_CACHE.put(key, await sealGrant(grant, secret, key), { expiration });
    } catch {
      // KV is only the read cache; the grant is held here regardless.
    }
  }
}
