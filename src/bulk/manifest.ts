import { err, ok, type Result } from "../result.ts";
import type { BulkUrlKind } from "./edge-url.ts";

/** The arrays of a manifest whose items name files: each item's `url` is a file. */
const FILE_ARRAYS = ["output", "error", "deleted"] as const;

export interface ManifestRewrite {
  /** `bulk_proxy_all_files`: files that need no token upstream go through the edge too. */
  proxyAllFiles: boolean;
  /** Whether the edge may fetch this upstream URL for the source. */
  mayFetch: (url: string) => boolean;
  /** The edge URL standing for an upstream location. */
  wrap: (url: string, kind: BulkUrlKind, credentials: boolean) => Promise<string>;
  /** The source's base URL rewriting, for `request` (the kick-off URL, under the FHIR base). */
  rewriteRequest: (url: string) => string;
}

export type ManifestProblem = { reason: "not-a-manifest" } | { reason: "host-not-allowed"; url: string };

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Rewrites a completed export's manifest for the client: `request` to the
 * edge's base; every `output[].url`, `error[].url` and `deleted[].url` the
 * edge must fetch (all of them when the upstream says `requiresAccessToken:
 * true`, or with `bulk_proxy_all_files`) to an edge URL, `requiresAccessToken`
 * then `true` (the client shows the edge its own credentials); a further
 * manifest page (`link[].url`) to an edge URL. Files that need no token
 * upstream are left as they are. A URL the edge would have to fetch from a
 * host it may not call refuses the whole manifest: nothing partial.
 * Everything else in the manifest is kept as the upstream wrote it.
 * @see https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status
 */
export async function rewriteManifest(manifest: unknown, how: ManifestRewrite): Promise<Result<Json, ManifestProblem>> {
  if (!isObject(manifest) || !Array.isArray(manifest.output)) return err({ reason: "not-a-manifest" });
  // requiresAccessToken is required by the IG; a manifest without it is read as needing one.
  const upstreamNeedsToken = manifest.requiresAccessToken !== false;
  const throughEdge = upstreamNeedsToken || how.proxyAllFiles;
  const out: Json = { ...manifest };
  if (typeof manifest.request === "string") out.request = how.rewriteRequest(manifest.request);

  for (const field of FILE_ARRAYS) {
    const items = manifest[field];
    if (!Array.isArray(items) || !throughEdge) continue;
    const rewritten: unknown[] = [];
    for (const item of items) {
      if (!isObject(item) || typeof item.url !== "string") {
        rewritten.push(item);
        continue;
      }
      if (!how.mayFetch(item.url)) return err({ reason: "host-not-allowed", url: item.url });
      rewritten.push({ ...item, url: await how.wrap(item.url, "file", upstreamNeedsToken) });
    }
    out[field] = rewritten;
  }
  if (throughEdge) out.requiresAccessToken = true;

  if (Array.isArray(manifest.link)) {
    const links: unknown[] = [];
    for (const link of manifest.link) {
      if (!isObject(link) || typeof link.url !== "string") {
        links.push(link);
        continue;
      }
      if (!how.mayFetch(link.url)) return err({ reason: "host-not-allowed", url: link.url });
      links.push({ ...link, url: await how.wrap(link.url, "manifest", true) });
    }
    out.link = links;
  }
  return ok(out);
}
