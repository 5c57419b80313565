import type { MiddlewareHandler } from "hono";
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from "jose";
import type { ClientIdentity, EdgeHonoEnv } from "../../context.ts";
import { UnauthenticatedError, UpstreamUnavailableError } from "../../errors.ts";
import { fetchWithTimeout } from "../../fetch-with-timeout.ts";

const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
/** The JWKS is reused this long, then fetched again. */
const JWKS_MAX_AGE_MS = 10 * 60_000;
/** An unknown `kid` refetches the JWKS, but not more often than this. */
const JWKS_COOLDOWN_MS = 30_000;
const JWKS_TIMEOUT_MS = 5_000;

interface KeySet {
  fetchedAt: number;
  getKey: JWTVerifyGetKey;
}

/**
 * `PROXY_AUTH=jwt`: `Authorization: Bearer <JWT>` verified with jose against
 * the remote JWKS, the issuer and the audience. Asymmetric algorithms only.
 * The client's name is the token's `sub`; its SMART scopes come from `scope`
 * (space-separated) or `scp` (array).
 *
 * The JWKS is fetched by the request that needs it and kept as a value (not
 * jose's remote set, whose pending fetch concurrent requests would share: in
 * Workers a promise waiting on I/O belongs to the request that started it).
 * @see docs/configuration.md#who-may-call-the-edge
 */
export const jwtAuth = (
  settings: { jwksUrl: string; issuer: string; audience: string },
  authenticate: (token: string) => Promise<VerifiedClient> = jwtVerifier(settings),
): MiddlewareHandler<EdgeHonoEnv> => {
  return async (c, next) => {
    const header = c.req.header("Authorization");
    const match = header ? /^Bearer[ \t]+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new UnauthenticatedError("missing-credentials", "This edge needs a bearer JWT (Authorization: Bearer <token>)", challenge());
    c.set("client", (await authenticate(match[1]!)).client);
    await next();
  };
};

/** A client the edge verified, and until when its credential holds (a JWT's `exp`), where it says. */
export interface VerifiedClient {
  client: ClientIdentity;
  /** Epoch milliseconds; undefined for credentials without an expiry (API keys). */
  expiresAt?: number;
}

const challenge = (error?: string) => `Bearer realm="fhir-edge"${error ? `, error="${error}"` : ""}`;

/**
 * Verifies a client JWT (the `PROXY_AUTH=jwt` rule) and names its client;
 * throws {@link UnauthenticatedError} when it does not verify. Used by
 * {@link jwtAuth} and by the console's sign-in, which takes a JWT in a form.
 * @see https://www.rfc-editor.org/rfc/rfc7519
 */
export function jwtVerifier(settings: { jwksUrl: string; issuer: string; audience: string }): (token: string) => Promise<VerifiedClient> {
  let keySet: KeySet | undefined;
  async function fetchKeySet(): Promise<KeySet> {
    let jwks: JSONWebKeySet;
    try {
      const response = await fetchWithTimeout(settings.jwksUrl, { headers: { Accept: "application/json" }, redirect: "manual" }, JWKS_TIMEOUT_MS);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      jwks = (await response.json()) as JSONWebKeySet;
      if (!Array.isArray(jwks?.keys)) throw new Error("no keys");
    } catch (error) {
      throw new UpstreamUnavailableError("jwks-unavailable", "The JWKS that verifies client tokens could not be fetched", error);
    }
    const fresh = { fetchedAt: Date.now(), getKey: createLocalJWKSet(jwks) };
    keySet = fresh;
    return fresh;
  }

  async function verify(token: string): Promise<JWTPayload> {
    let keys = keySet && Date.now() - keySet.fetchedAt < JWKS_MAX_AGE_MS ? keySet : await fetchKeySet();
    const options = { issuer: settings.issuer, audience: settings.audience, algorithms: ALGORITHMS };
    try {
      return (await jwtVerify(token, keys.getKey, options)).payload;
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - keys.fetchedAt < JWKS_COOLDOWN_MS) throw error;
      keys = await fetchKeySet();
      return (await jwtVerify(token, keys.getKey, options)).payload;
    }
  }

  return async (token) => {
    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch (error) {
      if (error instanceof UpstreamUnavailableError) throw error;
      if (error instanceof errors.JWTExpired) throw new UnauthenticatedError("token-expired", "The token has expired", challenge("invalid_token"));
      throw new UnauthenticatedError("invalid-token", "The token is not valid for this edge (signature, issuer or audience)", challenge("invalid_token"));
    }
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw new UnauthenticatedError("invalid-token", "The token has no sub claim", challenge("invalid_token"));
    }
    const scope = payload.scope ?? payload.scp;
    const scopes = typeof scope === "string" ? scope.split(/\s+/).filter(Boolean) : Array.isArray(scope) ? scope.filter((s): s is string => typeof s === "string") : [];
    return { client: { name: payload.sub, scopes }, ...(typeof payload.exp === "number" ? { expiresAt: payload.exp * 1000 } : {}) };
  };
}
