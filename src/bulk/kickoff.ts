import type { SourceConfig } from "../config/types.ts";
import { bulkUrlKey, bulkUrlSecret, signBulkUrl } from "./edge-url.ts";
import { mayFetch } from "../upstream/source-hosts.ts";

export { isExportKickoff } from "./export-request.ts";

export interface KickoffContext {
  source: SourceConfig;
  /** The client that kicked off the export: the only one who may poll it. */
  client: string;
  /** `<edge>/<source>`, no trailing slash. */
  edgeBase: string;
  /** The upstream URL the kick-off went to, to resolve a relative `Content-Location`. */
  upstreamUrl: string;
  env: Readonly<Record<string, unknown>>;
  allowInsecureHttp: boolean;
  now: number;
}

/** `<edge>/<source>/$bulk/<token>`: the edge URL of a signed Bulk Data location. */
export function bulkEdgeUrl(edgeBase: string, token: string): string {
  return `${edgeBase}/$bulk/${token}`;
}

/**
 * A kick-off's `202 Accepted` with its `Content-Location` (the status URL,
 * wherever the upstream put it, often outside the FHIR base) replaced by an
 * edge URL bound to the client. A status URL on a host the edge may not call
 * is left as the upstream gave it: the edge never fetches it.
 * @see https://hl7.org/fhir/uv/bulkdata/export.html#response---success
 */
export async function withEdgeStatusUrl(response: Response, ctx: KickoffContext): Promise<Response> {
  const location = response.headers.get("Content-Location");
  if (response.status !== 202 || location === null) return response;
  let statusUrl: string;
  try {
    statusUrl = new URL(location, ctx.upstreamUrl).href;
  } catch {
    return response;
  }
  if (!mayFetch(ctx.source, statusUrl, ctx.allowInsecureHttp)) return response;
  const key = await bulkUrlKey(bulkUrlSecret(ctx.env));
  const token = await signBulkUrl({ kind: "status", source: ctx.source.name, client: ctx.client, url: statusUrl, credentials: true }, key, ctx.now);
  const headers = new Headers(response.headers);
  headers.set("Content-Location", bulkEdgeUrl(ctx.edgeBase, token));
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
