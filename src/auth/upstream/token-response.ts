import { err, ok, type Result } from "../../result.ts";

/** An access token as the edge keeps it. Times are epoch milliseconds. */
export interface TokenGrant {
  accessToken: string;
  /** When the token endpoint says it expires; null when it gave no lifetime. */
  expiresAt: number | null;
  /** When to fetch the next one; null when no lifetime is known (used until refused). */
  refreshAt: number | null;
}

export type TokenFailure =
  | { reason: "refused"; status: number; error: string }
  | { reason: "malformed"; status: number }
  | { reason: "unreachable" };

/**
 * How long before expiry a token is replaced: `min(60 s, 10% of its life)`.
 * A fixed margin (HealthChain's 300 s) refreshes a 300 s SMART token on every call.
 * @returns milliseconds
 */
export function refreshMargin(expiresInSeconds: number): number {
  return Math.min(60_000, expiresInSeconds * 100);
}

/**
 * Validates a token endpoint's answer (the process step; the request step
 * returns the Response). Never assumes a lifetime the endpoint did not give.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.1
 */
export function processTokenResponse(status: number, body: unknown, now: number): Result<TokenGrant, TokenFailure> {
  const json = (body ?? {}) as Record<string, unknown>;
  if (status < 200 || status >= 300) {
    const error = typeof json.error === "string" && /^[\x20-\x7e]{1,64}$/.test(json.error) ? json.error : `http_${status}`;
    return err({ reason: "refused", status, error });
  }
  const accessToken = json.access_token;
  const tokenType = json.token_type;
  if (typeof accessToken !== "string" || accessToken === "" || (typeof tokenType === "string" && tokenType.toLowerCase() !== "bearer")) {
    return err({ reason: "malformed", status });
  }
  const expiresIn = typeof json.expires_in === "number" ? json.expires_in : typeof json.expires_in === "string" ? Number(json.expires_in) : NaN;
  if (!Number.isFinite(expiresIn) || expiresIn <= 0) {
    return ok({ accessToken, expiresAt: null, refreshAt: null });
  }
  const expiresAt = now + expiresIn * 1000;
  return ok({ accessToken, expiresAt, refreshAt: expiresAt - refreshMargin(expiresIn) });
}

/** Whether a grant may be used at `now`. A grant with no known lifetime is used until refused. */
export function isFresh(grant: TokenGrant, now: number): boolean {
  return grant.refreshAt === null || now < grant.refreshAt;
}
