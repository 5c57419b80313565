import type { Context } from "hono";
import type { EdgeHonoEnv } from "../../context.ts";
import { ForbiddenError, InvalidRequestError } from "../../errors.ts";
import { routeShape, type RouteShape } from "../../fhir/route-shape.ts";
import { isExportKickoff, requestedExportTypes } from "../../bulk/export-request.ts";
import { allows, bulkExportPermissions, parseScopes, requiredPermissions, type Permission, type ScopeGrant } from "./scopes.ts";

export interface AuthorizationRequest {
  method: string;
  route: RouteShape;
  /** Decoded path segments after the source. */
  segments: readonly string[];
  /** The raw query with its `?`. */
  search: string;
  /** Buffers the request body (once) when the check needs it: a batch's entries. */
  readBody: () => Promise<ArrayBuffer>;
}

/** A check run before anything goes upstream; throws to refuse. */
export type RequestAuthorizer = (c: Context<EdgeHonoEnv>, request: AuthorizationRequest) => Promise<void>;

const grantsCache = new WeakMap<readonly string[], ScopeGrant[]>();

function needsFor(method: string, segments: readonly string[], search: string, route: RouteShape): Array<[string, Permission]> {
  if (segments.length === 0 && method !== "POST") {
    const params = new URLSearchParams(search);
    // HAPI's base-level paging continues a search the edge cannot see: any search permission.
    if (params.has("_getpages")) return [["", "s"]];
    const types = params.get("_type");
    if (types) return types.split(",").map((t): [string, Permission] => [t.trim(), "s"]);
  }
  const instance = segments.length >= 2 && !segments[1]!.startsWith("_") && !segments[1]!.startsWith("$");
  return requiredPermissions(route.interaction, route.resourceType, instance);
}

function check(grants: ScopeGrant[], needs: Array<[string, Permission]>, what: string): void {
  for (const [type, permission] of needs) {
    const granted = type === "" ? grants.some((g) => g.permissions.has(permission)) : allows(grants, type, permission);
    if (!granted) {
      throw new ForbiddenError("scope-insufficient", `The token's scopes do not allow ${what} (needs system/${type || "<any>"}.${permission})`);
    }
  }
}

/**
 * Enforces SMART system scopes (JWT clients) per resource type and
 * interaction, before anything goes upstream, including each entry of a
 * batch or transaction. Clients without scopes (API keys) are unrestricted.
 * @see docs/configuration.md#who-may-call-the-edge
 */
export const smartScopes: RequestAuthorizer = async (c, request) => {
  const scopes = c.get("client").scopes;
  if (scopes === undefined) return;
  let grants = grantsCache.get(scopes);
  if (!grants) {
    grants = parseScopes(scopes);
    grantsCache.set(scopes, grants);
  }
  const { method, route, segments, search } = request;
  if (isExportKickoff(segments)) {
    const body = method === "POST" ? new TextDecoder().decode(await request.readBody()) : undefined;
    check(grants, bulkExportPermissions(requestedExportTypes(search, body)), `${method} ${route.shape}`);
    return;
  }
  check(grants, needsFor(method, segments, search, route), `${method} ${route.shape}`);
  if (route.interaction !== "batch") return;

  let bundle: { resourceType?: unknown; entry?: Array<{ request?: { method?: unknown; url?: unknown } }> };
  try {
    bundle = JSON.parse(new TextDecoder().decode(await request.readBody()));
  } catch {
    throw new InvalidRequestError("batch-unreadable", "A batch or transaction must be a JSON Bundle for the edge to check it against the token's scopes");
  }
  if (bundle?.resourceType !== "Bundle") {
    throw new InvalidRequestError("batch-unreadable", "A POST to the base must be a batch or transaction Bundle");
  }
  for (const [i, entry] of (bundle.entry ?? []).entries()) {
    const entryMethod = typeof entry.request?.method === "string" ? entry.request.method.toUpperCase() : "";
    const url = typeof entry.request?.url === "string" ? entry.request.url : "";
    const q = url.indexOf("?");
    const path = (q === -1 ? url : url.slice(0, q)).replace(/^\/+/, "");
    const entrySegments = path === "" ? [] : path.split("/").map((s) => decodeURIComponent(s));
    const entryRoute = routeShape(entryMethod, entrySegments);
    const needs = entryRoute.interaction === "batch" ? requiredPermissions("other", undefined, false) : needsFor(entryMethod, entrySegments, q === -1 ? "" : url.slice(q), entryRoute);
    check(grants, needs, `batch entry ${i} (${entryMethod} ${entryRoute.shape})`);
  }
};
