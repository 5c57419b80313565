import type { SourceConfig } from "../../config/types.ts";
import type { EdgeBindings } from "../../context.ts";
import { UpstreamUnavailableError, ConfigurationError } from "../../errors.ts";
import type { UpstreamCredentials } from "./credentials.ts";
import { openGrant } from "./sealed-token.ts";
import type { TokenCoordinator } from "./token-coordinator.ts";
import { grantFingerprint, tokenKvKey } from "./token-key.ts";
import { isFresh, type TokenGrant } from "./token-response.ts";

/**
 * Credentials of an OAuth source (client credentials or JWT assertion), as
 * seen from one isolate: an in-memory grant first, then KV (sealed with
 * `TOKEN_CACHE_KEY`), then the source's {@link TokenCoordinator}.
 *
 * Requests in the isolate share the grant, a value, never a pending lookup: a
 * promise waiting on I/O belongs to the request that started it, and the
 * Workers runtime cancels other requests' continuations on it once that
 * request is done, so they hang and answer 500 (npm run bench saw this at
 * every refresh under load). When the grant is due, each request asks KV and
 * the coordinator itself; the coordinator, a Durable Object, still makes one
 * token-endpoint call for all of them.
 */
export function oauthCredentials(source: SourceConfig, env: EdgeBindings, now: () => number): UpstreamCredentials {
  let held: TokenGrant | undefined;
  /** Tokens an upstream refused: a stale KV copy of one is not used again. */
  const refused = new Set<string>();
  const secretValues = source.auth.kind === "client-credentials" ? [source.auth.clientSecret] : [];
  let fingerprint: string | undefined;

  const coordinator = () => {
    const namespace = env.TOKEN_COORDINATOR as DurableObjectNamespace<TokenCoordinator> | undefined;
    if (!namespace) throw new ConfigurationError("token-coordinator-missing", "The TOKEN_COORDINATOR Durable Object binding is missing from wrangler.toml");
    return namespace.get(namespace.idFromName(source.name));
  };

  async function load(): Promise<TokenGrant> {
    fingerprint ??= await grantFingerprint(source);
    const secret = env.TOKEN_CACHE_KEY;
    if (typeof secret === "string" && secret !== "" && env.TOKEN_CACHE) {
      const key = tokenKvKey(source.name, fingerprint);
      const value = await env.TOKEN_CACHE.get(key);
      const grant = value ? await openGrant(value, secret, key) : undefined;
      if (grant && isFresh(grant, now()) && !refused.has(grant.accessToken)) return grant;
    }
    const answer = await coordinator().token(source.name);
    if (!answer.ok) throw new UpstreamUnavailableError(answer.code, answer.message);
    return answer.grant;
  }

  return {
    async authorization() {
      let grant = held;
      if (!grant || !isFresh(grant, now())) {
        grant = await load();
        held = grant;
      }
      return `Bearer ${grant.accessToken}`;
    },
    async invalidate(refusedAuthorization) {
      const bad = refusedAuthorization?.startsWith("Bearer ") ? refusedAuthorization.slice(7) : undefined;
      // A late 401 on an older token must not drop the fresh one held now.
      if (bad === undefined || held?.accessToken === bad) held = undefined;
      if (bad === undefined) return true;
      refused.add(bad);
      if (refused.size > 16) refused.delete(refused.values().next().value!);
      await coordinator().invalidate(source.name, bad);
      return true;
    },
    secrets() {
      return held ? [held.accessToken, ...secretValues] : secretValues;
    },
  };
}
