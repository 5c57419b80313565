/**
 * Every upstream call of the Bulk Data routes goes through {@link callSource}:
 * the one place that picks credentials, builds headers and forwards, so it
 * moves with the shared upstream client in one step.
 */
import { credentialsFor, type UpstreamCredentials } from "../auth/upstream/index.ts";
import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { UpstreamUnauthorizedError } from "../errors.ts";
import { forwardAuthenticated, type ForwardDeps } from "../proxy/forward.ts";
import { clientResponseHeaders, upstreamRequestHeaders } from "../proxy/headers.ts";
import { rewriterFor } from "../proxy/handler.ts";

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
}

export interface SourceCallResult {
  response: Response;
  attempts: number;
  /** Values that must never reach the client (the credential sent). */
  secrets: readonly string[];
}

/** A location that needs no token: nothing to send, nothing to refresh. */
const NO_CREDENTIALS: UpstreamCredentials = { authorization: async () => undefined, invalidate: async () => false, secrets: () => [] };

/**
 * One upstream request for a Bulk Data route, with the source's retry
 * policy, timeout and credentials, an upstream 401 refreshing the token once.
 * A 401 that remains is the edge's credentials failing: 502, as in the proxy.
 * @see https://hl7.org/fhir/uv/bulkdata/export.html
 */
export async function callSource(request: SourceCallRequest): Promise<SourceCallResult> {
  const { source, deps } = request;
  const credentials = request.credentials ? credentialsFor(source, request.env, deps.now) : NO_CREDENTIALS;
  const extra = request.credentials ? source.headers : [];
  const { response, attempts } = await forwardAuthenticated(
    {
      sourceName: source.name,
      method: request.method,
      url: request.url,
      headers: async () => upstreamRequestHeaders(request.clientHeaders, extra, await credentials.authorization(), request.requestId),
      body: null,
      retryable: request.retryable,
      retry: source.retry,
      timeoutMs: source.timeoutMs,
      // The source's circuit breaker and retry budget cover its own calls, not a storage host's.
      ...(request.credentials ? { protection: source.protection } : {}),
    },
    credentials,
    deps,
  );
  if (response.status === 401 && request.credentials) {
    await response.body?.cancel();
    throw new UpstreamUnauthorizedError(source.name);
  }
  return { response, attempts, secrets: credentials.secrets() };
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
