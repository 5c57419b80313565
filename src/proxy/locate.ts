import type { Context } from "hono";
import { routePath } from "hono/route";

export interface LocatedRequest {
  /** The edge's base for this source, e.g. `https://edge.example/epic`, no trailing slash. */
  edgeBase: string;
  /** The raw path after the source segment: `""` or starting with `/`. */
  rest: string;
  /** The raw query with its `?`, or `""`. */
  search: string;
}

/** A raw request URL split as sent: origin, path, and query with its `?` (or `""`). */
export function splitRawUrl(raw: string): { origin: string; path: string; search: string } {
  const originEnd = raw.indexOf("/", raw.indexOf("//") + 2);
  const q = raw.indexOf("?", originEnd);
  return { origin: raw.slice(0, originEnd), path: q === -1 ? raw.slice(originEnd) : raw.slice(originEnd, q), search: q === -1 ? "" : raw.slice(q) };
}

/**
 * Splits the raw request URL around the `:source` segment of the matched
 * route, so a mount prefix (`app.route("/fhir", createEdge())`) is kept in
 * the edge base and the rest of the path stays byte for byte as sent.
 */
export function locateRequest(c: Context, publicUrl: string | undefined, source: string): LocatedRequest {
  const { origin, path, search } = splitRawUrl(c.req.url);
  const index = routePath(c).split("/").indexOf(":source");
  const prefixPath = path.split("/").slice(0, index + 1).join("/");
  const rest = path.slice(prefixPath.length);
  const edgeBase = publicUrl ? `${publicUrl}/${source}` : origin + prefixPath;
  return { edgeBase, rest, search };
}

/**
 * The edge's public root, without a trailing slash: `PUBLIC_URL` when set,
 * else the request's origin plus the path the edge is mounted under, found by
 * taking the route's own segments off the end of the matched route pattern.
 * @param ownSegments how many path segments the route itself has (`/aggregate/:resourceType`: 2)
 */
export function edgeRoot(c: Context, publicUrl: string | undefined, ownSegments: number): string {
  if (publicUrl) return publicUrl;
  const { origin, path } = splitRawUrl(c.req.url);
  const keep = routePath(c).split("/").length - ownSegments;
  return origin + path.split("/").slice(0, keep).join("/");
}
