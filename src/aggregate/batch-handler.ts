import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { InvalidRequestError, MethodNotAllowedError, outcomeOf, statusOf, UpstreamErrorStatusError, UpstreamUnavailableError } from "../errors.ts";
import type { Bundle, BundleEntry, Resource } from "../fhir/types.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { rewriterFor } from "../upstream/rewrite-urls.ts";
import { edgeRoot } from "../routes.ts";
import { routeShape } from "../fhir/route-shape.ts";
import { requireSource } from "../config/lookup.ts";
import { resolveSourcePath } from "../upstream/source-path.ts";
import { readBatch, readBatchEntry } from "./batch.ts";
import { aggregateTimeout, fanOut, getFromSource, type FanOutContext } from "./fan-out.ts";
import { edgeFullUrl } from "./bundle.ts";
import { upstreamIssues } from "./page.ts";
import { fhirJson } from "../fhir/response.ts";
import type { AggregateRouteOptions } from "./search-handler.ts";

/** An entry-level failure: the status and the OperationOutcome, the batch goes on. */
function failedEntry(error: unknown, requestId: string): BundleEntry {
  return { response: { status: String(statusOf(error)), outcome: outcomeOf(error, requestId) } };
}

/** Runs one GET entry at its source; never rejects. */
async function runEntry(c: Context<EdgeHonoEnv>, options: AggregateRouteOptions, entry: unknown, root: string, ctx: FanOutContext, deps: ForwardDeps): Promise<BundleEntry> {
  try {
    const read = readBatchEntry(entry, root);
    if (!read.ok) {
      throw read.error.status === 405 ? new MethodNotAllowedError(String((entry as { request?: { method?: unknown } }).request?.method ?? ""), ["GET"]) : new InvalidRequestError(read.error.code, read.error.message);
    }
    const { source: name, rest, search } = read.value;
    const source = requireSource(c.get("config"), name);
    const resolved = resolveSourcePath(source, rest, search);
    if (!resolved.ok) throw new InvalidRequestError("unsafe-path", `The path is not allowed (${resolved.error}): it must stay under the source's FHIR base`);
    const route = routeShape("GET", resolved.value.segments);
    await options.authorize(c, { method: "GET", route, segments: resolved.value.segments, search, readBody: async () => new ArrayBuffer(0) });

    const answer = await getFromSource(source, rest + search, ctx, deps);
    if (answer.attempts > 1) c.set("logIncident", true);
    const rewriter = rewriterFor(source, `${root}/${source.name}`);
    if (answer.status < 200 || answer.status > 299) {
      const upstream = new UpstreamErrorStatusError(source.name, answer.status, upstreamIssues(answer.text));
      return { response: { status: String(answer.status), outcome: outcomeOf(upstream, ctx.requestId) } };
    }
    let resource: Resource;
    try {
      resource = JSON.parse(rewriter.rewriteText(answer.text)) as Resource;
    } catch {
      throw new UpstreamUnavailableError("upstream-malformed", `Source ${source.name}'s answer is not JSON`);
    }
    if (options.transformer) resource = await options.transformer.apply(resource, { source: source.name, requestId: ctx.requestId, env: c.env });
    const etag = answer.headers.get("ETag");
    const lastModified = Date.parse(answer.headers.get("Last-Modified") ?? "");
    const location = answer.headers.get("Content-Location");
    const fullUrl = resource.resourceType !== "Bundle" ? edgeFullUrl(root, source.name, { resource }) : undefined;
    return {
      ...(fullUrl ? { fullUrl } : {}),
      resource,
      response: {
        status: String(answer.status),
        ...(location ? { location: rewriter.rewriteHeader(location) } : {}),
        ...(etag ? { etag } : {}),
        ...(Number.isNaN(lastModified) ? {} : { lastModified: new Date(lastModified).toISOString() }),
      },
    };
  } catch (error) {
    return failedEntry(error, ctx.requestId);
  }
}

/**
 * `POST /aggregate`: a FHIR batch whose entries each name their source
 * (`<source>/Patient?...`), run in parallel (six at most at once, within
 * `AGGREGATE_TIMEOUT`) and answered as a `batch-response` in the same order.
 * A bad, forbidden or failed entry gets its own status and OperationOutcome.
 * @see https://hl7.org/fhir/R4/http.html#transaction-response
 */
export const aggregateBatchHandler =
  (options: AggregateRouteOptions) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    c.set("logRoute", "aggregate");
    if (c.req.method !== "POST") throw new MethodNotAllowedError(c.req.method, ["POST"]);
    const config = c.get("config");
    const requestId = c.get("requestId");
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new InvalidRequestError("batch-invalid", "POST /aggregate takes a FHIR batch Bundle as JSON");
    }
    const batch = readBatch(body);
    if (!batch.ok) throw new InvalidRequestError(batch.error.code, batch.error.message);
    const root = edgeRoot(c, config.publicUrl, "aggregateBatch");
    const ctx: FanOutContext = { env: c.env, requestId, clientHeaders: c.req.raw.headers };
    const entries = await fanOut(
      batch.value,
      config.aggregate.timeoutMs,
      (entry, signal) => runEntry(c, options, entry, root, { ...ctx, signal }, options.deps),
      (entry) => {
        const read = readBatchEntry(entry, root);
        return failedEntry(aggregateTimeout(read.ok ? read.value.source : "?", config.aggregate.timeoutMs), requestId);
      },
      c.req.raw.signal,
    );
    if (entries.some((e) => !e.response?.status.startsWith("2"))) c.set("logIncident", true);
    const response: Bundle = { resourceType: "Bundle", id: crypto.randomUUID(), type: "batch-response", entry: entries };
    return fhirJson(response);
  };
