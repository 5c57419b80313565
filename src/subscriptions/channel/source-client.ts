import { credentialsFor } from "../../auth/upstream/index.ts";
import type { SourceConfig } from "../../config/types.ts";
import type { EdgeBindings } from "../../context.ts";
import { defaultDeps, forwardAuthenticated, type ForwardDeps } from "../../proxy/forward.ts";
import { upstreamRequestHeaders } from "../../proxy/headers.ts";

/** How the channel object calls its source (`$events`, `$status`). */
export type SourceGet = (source: SourceConfig, pathAndQuery: string, signal?: AbortSignal) => Promise<Response>;

/**
 * The one way the channel object calls its source: a GET of `pathAndQuery`
 * under the source's base URL, with its credentials, retry policy and timeout;
 * an upstream 401 drops the token, fetches a new one and retries once, as for
 * the proxy.
 * @see https://hl7.org/fhir/R5/subscription-operation-events.html
 * @see https://hl7.org/fhir/R5/subscription-operation-status.html
 */
export function sourceClient(env: EdgeBindings, deps: ForwardDeps = defaultDeps): SourceGet {
  return async (source, pathAndQuery, signal) => {
    const credentials = credentialsFor(source, env, deps.now);
    const requestId = crypto.randomUUID();
    const fetch = signal ? (r: Request) => deps.fetch(new Request(r, { signal: AbortSignal.any([r.signal, signal]) })) : deps.fetch;
    const { response } = await forwardAuthenticated(
      {
        sourceName: source.name,
        method: "GET",
        url: `${source.baseUrl}/${pathAndQuery.replace(/^\//, "")}`,
        headers: async () => upstreamRequestHeaders(new Headers({ Accept: "application/fhir+json" }), source.headers, await credentials.authorization(), requestId),
        body: null,
        retryable: true,
        retry: source.retry,
        timeoutMs: source.timeoutMs,
      },
      credentials,
      { ...deps, fetch },
    );
    return response;
  };
}
