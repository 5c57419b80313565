import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { NotFoundError } from "../errors.ts";
import type { CapabilityStatement, CapabilityStatementRestSecurity } from "../fhir/types.ts";
import { edgeSecurity } from "../metadata/edge-security.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { clientResponseHeaders } from "../upstream/headers.ts";
import { locateRequest } from "./locate.ts";
import { rewriterFor } from "../upstream/rewrite-urls.ts";
import { sourceClient } from "../upstream/source-client.ts";
import { requireSource } from "../config/lookup.ts";

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (ch) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[ch]!);
}

/** Replaces `rest[].security` of a CapabilityStatement, JSON or XML text. */
function replaceSecurity(text: string, xml: boolean, security: CapabilityStatementRestSecurity): string {
  if (xml) {
    const element = `<security><cors value="true"/><description value="${escapeXml(security.description ?? "")}"/></security>`;
    return text.replace(/<security>[\s\S]*?<\/security>/g, element);
  }
  const statement = JSON.parse(text) as CapabilityStatement;
  if (statement.resourceType !== "CapabilityStatement") return text;
  for (const rest of statement.rest ?? []) rest.security = security;
  return JSON.stringify(statement);
}

/** How long a source's rewritten CapabilityStatement is reused by an isolate. */
const METADATA_TTL_MS = 60_000;
const metadataCache = new WeakMap<object, Map<string, { expires: number; status: number; headers: [string, string][]; body: string }>>();

/**
 * `GET /:source/metadata`: the upstream's CapabilityStatement with its
 * security replaced by the edge's and its URLs rewritten to the edge.
 * Public, like the FHIR spec expects of `metadata`; a successful answer is
 * reused for a minute per isolate, so anonymous callers cannot make the edge
 * hammer the upstream with its credentials.
 */
export const sourceMetadataHandler =
  (deps: ForwardDeps) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    const config = c.get("config");
    const source = requireSource(config, c.req.param("source") ?? "");
    c.set("logSource", source.name);
    c.set("logRoute", "metadata");
    const located = locateRequest(c, config.publicUrl, source.name);
    const requestId = c.get("requestId");
    let cache = metadataCache.get(source);
    if (!cache) {
      cache = new Map();
      metadataCache.set(source, cache);
    }
    const cacheKey = `${located.edgeBase} ${located.search} ${c.req.header("Accept") ?? ""}`;
    const hit = cache.get(cacheKey);
    if (hit && hit.expires > deps.now()) {
      const headers = new Headers(hit.headers);
      headers.set("X-Request-Id", requestId);
      return new Response(hit.body, { status: hit.status, headers });
    }
    const client = sourceClient(source, c.env, deps);
    const { response, attempts } = await client.send({
      method: "GET",
      path: `/metadata${located.search}`,
      requestId,
      headers: c.req.raw.headers,
      retryable: true,
      signal: c.req.raw.signal,
    });
    c.set("logAttempts", attempts);
    if (attempts > 1) c.set("logIncident", true);
    const rewriter = rewriterFor(source, located.edgeBase);
    const contentType = response.headers.get("Content-Type") ?? "";
    let text = await client.text(response, requestId);
    if (response.ok && (contentType.includes("json") || contentType.includes("xml"))) {
      try {
        text = replaceSecurity(text, contentType.includes("xml"), edgeSecurity(config.inbound));
      } catch {
        // Not JSON after all: returned as the upstream sent it, URLs rewritten.
      }
    }
    const out = clientResponseHeaders(response.headers, rewriter.rewriteHeader, client.secrets(), requestId, true);
    // The edge's own description of the source: every upstream URL in it points at the edge.
    const body = rewriter.rewriteEverywhere(text);
    if (response.ok) {
      if (cache.size > 32) cache.clear();
      cache.set(cacheKey, { expires: deps.now() + METADATA_TTL_MS, status: response.status, headers: [...out], body });
    }
    return new Response(body, { status: response.status, headers: out });
  };

/**
 * `GET /:source/.well-known/smart-configuration`: SMART discovery of the
 * edge, so a SMART client never learns the upstream's token endpoint. With
 * API keys (or no auth) there is nothing SMART to discover: 404.
 * @see https://hl7.org/fhir/smart-app-launch/conformance.html#using-well-known
 */
export const smartConfigurationHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  const config = c.get("config");
  const source = requireSource(config, c.req.param("source") ?? "");
  c.set("logSource", source.name);
  c.set("logRoute", ".well-known/smart-configuration");
  const inbound = config.inbound;
  if (inbound?.mode !== "jwt") {
    throw new NotFoundError(
      "smart-not-used",
      "This edge authenticates its clients with API keys, not SMART; send Authorization: Bearer <key> or X-Api-Key",
    );
  }
  const tokenEndpoint = typeof c.env.PROXY_JWT_TOKEN_URL === "string" ? c.env.PROXY_JWT_TOKEN_URL : undefined;
  return c.json(
    {
      issuer: inbound.issuer,
      jwks_uri: inbound.jwksUrl,
      ...(tokenEndpoint ? { token_endpoint: tokenEndpoint } : {}),
      grant_types_supported: ["client_credentials"],
      token_endpoint_auth_methods_supported: ["private_key_jwt"],
      scopes_supported: ["system/*.rs", "system/*.cruds", "system/*.read", "system/*.write"],
      capabilities: ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    },
    200,
    { "Cache-Control": "public, max-age=300" },
  );
};
