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

/**
 * Splits the raw request URL around the `:source` segment of the matched
 * route, so a mount prefix (`app.route("/fhir", createEdge())`) is kept in
 * the edge base and the rest of the path stays byte for byte as sent.
 */
export function locateRequest(c: Context, publicUrl: string | undefined, source: string): LocatedRequest {
  const raw = c.req.url;
  const originEnd = raw.indexOf("/", raw.indexOf("//") + 2);
  const q = raw.indexOf("?", originEnd);
  const path = q === -1 ? raw.slice(originEnd) : raw.slice(originEnd, q);
  const search = q === -1 ? "" : raw.slice(q);
  const index = routePath(c).split("/").indexOf(":source");
  const prefixPath = path.split("/").slice(0, index + 1).join("/");
  const rest = path.slice(prefixPath.length);
  const edgeBase = publicUrl ? `${publicUrl}/${source}` : raw.slice(0, originEnd) + prefixPath;
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
  const raw = c.req.url;
  const originEnd = raw.indexOf("/", raw.indexOf("//") + 2);
  const q = raw.indexOf("?", originEnd);
  const path = q === -1 ? raw.slice(originEnd) : raw.slice(originEnd, q);
  const keep = routePath(c).split("/").length - ownSegments;
  return raw.slice(0, originEnd) + path.split("/").slice(0, keep).join("/");
}
