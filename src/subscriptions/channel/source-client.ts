import type { SourceConfig } from "../../config/types.ts";
import type { EdgeBindings } from "../../context.ts";
import { defaultDeps, type ForwardDeps } from "../../upstream/forward.ts";
import { sourceClient } from "../../upstream/source-client.ts";

/** How the channel object calls its source (`$events`, `$status`). */
export type SourceGet = (source: SourceConfig, pathAndQuery: string, signal?: AbortSignal) => Promise<Response>;

/**
 * The one way the channel object calls its source: a GET of `pathAndQuery`
 * under the source's base URL through the edge's upstream client
 * (src/upstream/), so its credentials, path safety, retry policy, timeout and
 * the 401 refresh (a refused token dropped, a new one fetched, the request
 * sent once more) are the proxy's own.
 * @see https://hl7.org/fhir/R5/subscription-operation-events.html
 * @see https://hl7.org/fhir/R5/subscription-operation-status.html
 * @see docs/upstream-client.md
 */
export function sourceGet(env: EdgeBindings, deps: ForwardDeps = defaultDeps): SourceGet {
  return async (source, pathAndQuery, signal) => {
    const { response } = await sourceClient(source, env, deps).send({
      method: "GET",
      path: pathAndQuery.startsWith("/") || pathAndQuery.startsWith("?") ? pathAndQuery : `/${pathAndQuery}`,
      requestId: crypto.randomUUID(),
      headers: new Headers({ Accept: "application/fhir+json" }),
      retryable: true,
      ...(signal ? { signal } : {}),
    });
    return response;
  };
}
