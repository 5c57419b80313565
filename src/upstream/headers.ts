import { HOP_BY_HOP } from "./hop-by-hop.ts";

/** What a client shows the edge, or the platform adds: never forwarded upstream. */
const CLIENT_ONLY = new Set(["host", "authorization", "x-api-key", "cookie", "content-length", "x-request-id", "cdn-loop", "x-forwarded-proto", "x-real-ip"]);

/** What an upstream may say that is not for the client: its session and its auth challenge. */
const UPSTREAM_ONLY = new Set(["set-cookie", "set-cookie2", "authorization", "www-authenticate", "x-api-key"]);

function connectionListed(headers: Headers): Set<string> {
  const listed = new Set<string>();
  const connection = headers.get("Connection");
  if (connection) for (const name of connection.split(",")) listed.add(name.trim().toLowerCase());
  return listed;
}

/**
 * The headers sent upstream: the client's, less hop-by-hop, less its
 * credentials for the edge and platform headers, plus the request id, the
 * source's extra headers and its credentials.
 */
export function upstreamRequestHeaders(
  client: Headers,
  extra: ReadonlyArray<readonly [string, string]>,
  authorization: string | undefined,
  requestId: string,
): Headers {
  const listed = connectionListed(client);
  const out = new Headers();
  for (const [name, value] of client) {
    if (HOP_BY_HOP.has(name) || CLIENT_ONLY.has(name) || listed.has(name) || name.startsWith("cf-")) continue;
    out.append(name, value);
  }
  for (const [name, value] of extra) out.set(name, value);
  if (authorization) out.set("Authorization", authorization);
  out.set("X-Request-Id", requestId);
  return out;
}

/**
 * The headers returned to the client: the upstream's, less hop-by-hop, less
 * its cookies and auth challenge, less any header that echoes the credential
 * the edge sent; `Location` and `Content-Location` rewritten to the edge.
 * When the body was read and replaced, its old length goes; an encoding stays,
 * and the runtime compresses the new body to match.
 */
export function clientResponseHeaders(
  upstream: Headers,
  rewriteUrl: (value: string) => string,
  secrets: readonly string[],
  requestId: string,
  bodyReplaced: boolean,
): Headers {
  const listed = connectionListed(upstream);
  const out = new Headers();
  for (const [name, value] of upstream) {
    if (HOP_BY_HOP.has(name) || UPSTREAM_ONLY.has(name) || listed.has(name)) continue;
    if (bodyReplaced && name === "content-length") continue;
    if (secrets.length > 0 && secrets.some((s) => value.includes(s))) continue;
    out.append(name, name === "location" || name === "content-location" ? rewriteUrl(value) : value);
  }
  out.set("X-Request-Id", requestId);
  return out;
}
