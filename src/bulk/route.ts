import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { MethodNotAllowedError, NotFoundError, UpstreamUnavailableError } from "../errors.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { locateRequest } from "../proxy/locate.ts";
import { requireSource } from "../config/lookup.ts";
import { bulkUrlKey, bulkUrlSecret, readBulkUrl, signBulkUrl, type BulkUrlClaims } from "./edge-url.ts";
import { hostOf, mayFetch } from "../upstream/source-hosts.ts";
import { bulkEdgeUrl } from "./kickoff.ts";
import { rewriteManifest } from "./manifest.ts";
import { answerHeaders, callSource, rewriteBaseUrl } from "./source-call.ts";

const METHODS: Record<BulkUrlClaims["kind"], readonly string[]> = {
  status: ["GET", "DELETE"],
  manifest: ["GET"],
  file: ["GET", "HEAD"],
};

/** 404 for a token that is not this edge's, or not this source's, or not this client's: the same answer, so none is told apart. */
const unknown = () => new NotFoundError("bulk-url-unknown", "No such Bulk Data location on this edge for this client");

/**
 * `/:source/$bulk/:token`: a Bulk Data location (status URL, manifest page,
 * file) the edge handed to a client. The token is verified (signature,
 * source, client, expiry) before anything else, and its upstream URL checked
 * against the source's hosts again; only then is it fetched.
 * - status `GET`: the upstream's `202` (with `X-Progress`, `Retry-After`)
 *   and errors (its OperationOutcome) pass through, not retried; a `200`
 *   manifest comes back rewritten (see {@link rewriteManifest});
 * - status `DELETE`: cancels the export upstream;
 * - file `GET`: streams the upstream's body as it comes (its Content-Encoding kept),
 *   unbuffered, read in whole megabytes and cut off when one does not arrive within the source's `timeout`
 *   (see `passOnFile` in src/upstream/answer-body.ts).
 * @see https://hl7.org/fhir/uv/bulkdata/export.html
 */
export const bulkHandler = (deps: ForwardDeps) => async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  const config = c.get("config");
  const source = requireSource(config, c.req.param("source") ?? "");
  c.set("logSource", source.name);
  c.set("logRoute", "$bulk/{token}");
  const key = await bulkUrlKey(bulkUrlSecret(c.env));
  const read = await readBulkUrl(c.req.param("token") ?? "", key, deps.now());
  if (!read.ok && read.error === "invalid") throw unknown();
  if (read.ok && (read.value.source !== source.name || read.value.client !== c.get("client").name)) throw unknown();
  if (!read.ok) throw new NotFoundError("bulk-url-expired", "This Bulk Data location has expired on this edge; kick off the export again");
  const claims = read.value;
  c.set("logRoute", `$bulk/{${claims.kind}}`);
  const method = c.req.method;
  if (!METHODS[claims.kind].includes(method)) throw new MethodNotAllowedError(method, METHODS[claims.kind]);

  const requestId = c.get("requestId");
  const { edgeBase } = locateRequest(c, config.publicUrl, source.name);
  const isFile = claims.kind === "file";
  const { response, attempts, secrets, client: upstream } = await callSource({
    source,
    env: c.env,
    deps,
    method: method as "GET" | "HEAD" | "DELETE",
    url: claims.url,
    clientHeaders: c.req.raw.headers,
    requestId,
    credentials: claims.credentials,
    retryable: isFile,
    // Signed URLs were checked when signed; the client checks again, as the source's hosts may have changed since.
    allowInsecureHttp: config.allowInsecureHttp,
    signal: c.req.raw.signal,
  });
  c.set("logAttempts", attempts);
  if (attempts > 1) c.set("logIncident", true);

  if (isFile) {
    // The runtime hands the body over decoded and encodes it again as Content-Encoding says,
    // so the upstream's encoding reaches the client but its length no longer fits.
    const headers = answerHeaders(response.headers, source, edgeBase, secrets, requestId, response.headers.has("Content-Encoding"));
    const body = method === "HEAD" ? null : await upstream.passOnFile(response, requestId);
    return new Response(body, { status: response.status, headers });
  }

  const contentType = response.headers.get("Content-Type") ?? "";
  if (method !== "GET" || response.status !== 200 || !contentType.includes("json")) {
    return new Response(method === "HEAD" ? null : await upstream.passOn(response, requestId), { status: response.status, headers: answerHeaders(response.headers, source, edgeBase, secrets, requestId, false) });
  }
  const text = await upstream.text(response, requestId);
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch {
    manifest = undefined;
  }
  const now = deps.now();
  const client = claims.client;
  const rewritten = await rewriteManifest(manifest, {
    proxyAllFiles: source.bulk.proxyAllFiles,
    mayFetch: (url) => mayFetch(source, url, config.allowInsecureHttp),
    wrap: async (url, kind, credentials) => bulkEdgeUrl(edgeBase, await signBulkUrl({ kind, source: source.name, client, url, credentials }, key, now)),
    rewriteRequest: (url) => rewriteBaseUrl(source, edgeBase, url),
  });
  if (!rewritten.ok && rewritten.error.reason === "host-not-allowed") {
    throw new UpstreamUnavailableError(
      "bulk-host-not-allowed",
      `Source ${source.name} put an export file on ${hostOf(rewritten.error.url)}, a host it does not list in bulk_file_hosts; the edge fetches nothing there`,
    );
  }
  // Not a manifest (a server's own 200 answer of another kind): passed on as it came.
  const body = rewritten.ok ? JSON.stringify(rewritten.value) : text;
  return new Response(body, { status: 200, headers: answerHeaders(response.headers, source, edgeBase, secrets, requestId, true) });
};
