/**
 * Every upstream call of the Bulk Data routes goes through {@link callSource},
 * which hands it to the source's upstream client (src/upstream/).
 */
import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { UpstreamUnauthorizedError } from "../errors.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { clientResponseHeaders } from "../upstream/headers.ts";
import { rewriterFor } from "../upstream/rewrite-urls.ts";
import { sourceClient, type SourceClient } from "../upstream/source-client.ts";

export interface SourceCallRequest {
  source: SourceConfig;
  env: EdgeBindings;
  deps: ForwardDeps;
  method: "GET" | "HEAD" | "DELETE";
  url: string;
  clientHeaders: Headers;
  requestId: string;
  /** Send the source's credentials and extra headers (false: a pre-signed storage URL, which gets neither). */
  credentials: boolean;
  /** Whether the edge may send it again on a retryable status (a poll never is: the client's polling is the retry). */
  retryable: boolean;
  allowInsecureHttp: boolean;
  /** The client went away: no further attempt or wait. */
  signal?: AbortSignal;
}

export interface SourceCallResult {
  response: Response;
  attempts: number;
  /** Values that must never reach the client (the credential sent). */
  secrets: readonly string[];
  /** The source's client, to read the answer's body: `passOn`, `passOnFile` (a file) or `text`. */
  client: SourceClient;
}

/**
 * One upstream request for a Bulk Data route, through the source's upstream
 * client (src/upstream/): its retry policy, timeout, credentials and
 * protection, an upstream 401 refreshing the token once. A 401 that remains
 * is the edge's credentials failing: 502, as in the proxy.
 * @see https://hl7.org/fhir/uv/bulkdata/export.html
 * @see docs/upstream-client.md
 */
export async function callSource(request: SourceCallRequest): Promise<SourceCallResult> {
  const { source } = request;
  const client = sourceClient(source, request.env, request.deps);
  const { response, attempts } = await client.sendTo({
    method: request.method,
    url: request.url,
    requestId: request.requestId,
    headers: request.clientHeaders,
    credentials: request.credentials,
    retryable: request.retryable,
    allowInsecureHttp: request.allowInsecureHttp,
    // The source's circuit breaker and retry budget cover its own calls, not a storage host's (sendTo leaves those out).
    guarded: true,
    ...(request.signal ? { signal: request.signal } : {}),
  });
  if (response.status === 401 && request.credentials) {
    await response.body?.cancel();
    throw new UpstreamUnauthorizedError(source.name);
  }
  return { response, attempts, secrets: request.credentials ? client.secrets() : [], client };
}

/**
 * The headers of an upstream answer for the client (hop-by-hop, cookies and
 * echoed credentials dropped; `Location`/`Content-Location` under the FHIR
 * base rewritten to the edge).
 */
export function answerHeaders(upstream: Headers, source: SourceConfig, edgeBase: string, secrets: readonly string[], requestId: string, bodyReplaced: boolean): Headers {
  return clientResponseHeaders(upstream, rewriterFor(source, edgeBase).rewriteHeader, secrets, requestId, bodyReplaced);
}

/** The source's base-URL rewriting of one URL (the manifest's `request`). */
export function rewriteBaseUrl(source: SourceConfig, edgeBase: string, url: string): string {
  return rewriterFor(source, edgeBase).rewriteHeader(url);
}
