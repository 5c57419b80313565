import type { Context } from "hono";
import { routePath } from "hono/route";

/**
 * The edge's own routes by name, as app.ts mounts them. A handler that
 * writes a URL of the edge names its route here, so the mount and the URL
 * cannot drift apart.
 */
export const ROUTES = {
  root: "/",
  status: "/status",
  consoleSignIn: "/admin/console/sign-in",
  consoleSignOut: "/admin/console/sign-out",
  consoleLive: "/admin/console/live",
  edgeMetadata: "/metadata",
  jwks: "/.well-known/jwks.json",
  register: "/admin/channels/:channel/register",
  replay: "/admin/channels/:channel/events",
  webhook: "/webhooks/:channel",
  inbox: "/channels/:channel/ws",
  aggregateSearch: "/aggregate/:resourceType",
  aggregateBatch: "/aggregate",
} as const;

export type RouteName = keyof typeof ROUTES;

/** A raw request URL split as sent: origin, path, and query with its `?` (or `""`). */
export function splitRawUrl(raw: string): { origin: string; path: string; search: string } {
  const originEnd = raw.indexOf("/", raw.indexOf("//") + 2);
  const q = raw.indexOf("?", originEnd);
  return { origin: raw.slice(0, originEnd), path: q === -1 ? raw.slice(originEnd) : raw.slice(originEnd, q), search: q === -1 ? "" : raw.slice(q) };
}

/**
 * The edge's public root, without a trailing slash: `PUBLIC_URL` when set,
 * else the request's origin plus the path the edge is mounted under
 * (`app.route("/fhir", createEdge())` keeps `/fhir`), found by taking the
 * named route's own segments off the end of the matched route pattern.
 * @param route the route the request matched, e.g. `"aggregateSearch"`
 */
export function edgeRoot(c: Context, publicUrl: string | undefined, route: RouteName): string {
  if (publicUrl) return publicUrl;
  const { origin, path } = splitRawUrl(c.req.url);
  const ownSegments = ROUTES[route].split("/").length - 1;
  const keep = routePath(c).split("/").length - ownSegments;
  return origin + path.split("/").slice(0, keep).join("/");
}
