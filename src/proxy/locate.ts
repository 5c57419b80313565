import type { Context } from "hono";
import { routePath } from "hono/route";
import { splitRawUrl } from "../routes.ts";

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
  const { origin, path, search } = splitRawUrl(c.req.url);
  const index = routePath(c).split("/").indexOf(":source");
  const prefixPath = path.split("/").slice(0, index + 1).join("/");
  const rest = path.slice(prefixPath.length);
  const edgeBase = publicUrl ? `${publicUrl}/${source}` : origin + prefixPath;
  return { edgeBase, rest, search };
}
