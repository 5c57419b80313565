import type { Context } from "hono";
import type { RequestAuthorizer } from "../auth/inbound/authorize.ts";
import type { EdgeHonoEnv } from "../context.ts";
import { InvalidRequestError, MethodNotAllowedError, UpstreamUnauthorizedError } from "../errors.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { clientResponseHeaders } from "../upstream/headers.ts";
import { locateRequest } from "./locate.ts";
import { isRetryable } from "../upstream/retry.ts";
import { rewriterFor } from "../upstream/rewrite-urls.ts";
import { sourceClient } from "../upstream/source-client.ts";
import { routeShape } from "../fhir/route-shape.ts";
import { requireSource } from "../config/lookup.ts";
import { resolveSourcePath } from "../upstream/source-path.ts";
import type { Transformer } from "../transform/transforms.ts";
import { isExportKickoff, withEdgeStatusUrl } from "../bulk/kickoff.ts";

export const PROXIED_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] as const;
const PROXIED: ReadonlySet<string> = new Set(PROXIED_METHODS);

function isText(contentType: string | null): boolean {
  return contentType !== null && (contentType.includes("json") || contentType.includes("xml"));
}

/**
 * `/:source/*`: forwards one FHIR interaction to the source and returns its
 * answer through the edge. With transform handlers, a JSON body that may hold
 * a resource of a transformed type is parsed and changed; a single resource
 * is only buffered when its own type has a handler, so every other body
 * still streams.
 * @see docs/proxy.md
 */
export const proxyHandler =
  (deps: ForwardDeps, authorize: RequestAuthorizer, transformer?: Transformer) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    const config = c.get("config");
    const name = c.req.param("source") ?? "";
    const source = requireSource(config, name);
    c.set("logSource", source.name);
    const method = c.req.method;
    if (!PROXIED.has(method)) throw new MethodNotAllowedError(method, PROXIED_METHODS);

    const located = locateRequest(c, config.publicUrl, source.name);
    const resolved = resolveSourcePath(source, located.rest, located.search);
    if (!resolved.ok) {
      throw new InvalidRequestError("unsafe-path", `The path is not allowed (${resolved.error}): it must stay under the source's FHIR base`);
    }
    const route = routeShape(method, resolved.value.segments);
    c.set("logRoute", route.shape);
    let buffered: ArrayBuffer | undefined;
    const readBody = async () => (buffered ??= await c.req.raw.arrayBuffer());
    await authorize(c, { method, route, segments: resolved.value.segments, search: located.search, readBody });

    const requestId = c.get("requestId");
    const clientHeaders = c.req.raw.headers;
    const client = sourceClient(source, c.env, deps);
    // A Bulk Data kick-off starts a job each time it is sent: retried only where POST is.
    const kickoff = isExportKickoff(resolved.value.segments);
    const retryable = kickoff ? source.retry.methods.has("POST") : isRetryable(method, clientHeaders, resolved.value.segments, source.retry);
    const hasBody = method !== "GET" && method !== "HEAD" && c.req.raw.body !== null;
    // Buffer only a body that may be sent twice (a retry, or once more after an
    // upstream 401 on a cached token); any other streams through once.
    const resend = (retryable && source.retry.maxAttempts > 1) || source.auth.kind === "client-credentials" || source.auth.kind === "jwt-assertion";
    const body = hasBody ? (buffered ?? (resend ? await readBody() : c.req.raw.body)) : null;

    const forwarded = await client.send({
      method,
      path: located.rest + located.search,
      requestId,
      headers: clientHeaders,
      body,
      retryable,
      // A client that disconnects ends the retries (where the runtime passes its disconnect on).
      signal: c.req.raw.signal,
      // The source's circuit breaker, Retry-After hold and retry budget (docs/protection.md).
      guarded: true,
    });
    const { attempts } = forwarded;
    c.set("logAttempts", attempts);
    if (attempts > 1) c.set("logIncident", true);
    if (forwarded.response.status === 401) {
      await forwarded.response.body?.cancel();
      throw new UpstreamUnauthorizedError(source.name);
    }
    const response = kickoff
      ? await withEdgeStatusUrl(forwarded.response, {
          source,
          client: c.get("client").name,
          edgeBase: located.edgeBase,
          upstreamUrl: resolved.value.url,
          env: c.env,
          allowInsecureHttp: config.allowInsecureHttp,
          now: deps.now(),
        })
      : forwarded.response;

    const rewriter = rewriterFor(source, located.edgeBase);
    const secrets = client.secrets();
    const contentType = response.headers.get("Content-Type");
    const answered = response.body !== null && method !== "HEAD";
    const rewriteBody = answered && isText(contentType) && (source.rewriteBodies === "all" || !route.singleResource);
    const transform =
      transformer && answered && contentType?.includes("json") && route.interaction !== "delete" && (!route.singleResource || transformer.has(route.resourceType))
        ? transformer
        : undefined;
    if (!rewriteBody && !transform) {
      const headers = clientResponseHeaders(response.headers, rewriter.rewriteHeader, secrets, requestId, false);
      const passed = method === "HEAD" ? null : await client.passOn(response, requestId);
      return new Response(passed, { status: response.status, headers });
    }
    let text = await client.text(response, requestId);
    if (rewriteBody) text = rewriter.rewriteText(text);
    if (transform) text = await transform.applyToText(text, { source: source.name, requestId, env: c.env });
    const headers = clientResponseHeaders(response.headers, rewriter.rewriteHeader, secrets, requestId, true);
    return new Response(text, { status: response.status, headers });
  };
