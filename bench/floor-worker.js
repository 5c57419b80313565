/**
 * The floor of the edge's contract: a hand-written Worker (no framework, no
 * configuration system, no retries, no auth broker) that does only the
 * per-request duties the edge must do on a proxied read or search: a request
 * id, the API key compared in constant time, the path checked segment by
 * segment, hop-by-hop and credential headers dropped both ways, a per-attempt
 * timeout, the upstream base rewritten in a search's body (on the text, with a
 * plain replaceAll: a little less work than the edge, which checks that each
 * match ends at a URL boundary), and one access-log line. The edge's ratio to this row is what our structure
 * costs; this row's ratio to the bare Worker is what the duties themselves
 * cost on this runtime.
 */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"]);
const CLIENT_ONLY = new Set(["host", "authorization", "x-api-key", "cookie", "content-length", "x-request-id", "cdn-loop", "x-forwarded-proto", "x-real-ip"]);
const UPSTREAM_ONLY = new Set(["set-cookie", "set-cookie2", "authorization", "www-authenticate", "x-api-key"]);
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function sameSecret(a, b) {
  let diff = a.length ^ b.length;
  const walk = Math.max(256, a.length, b.length);
  for (let i = 0; i < walk; i++) diff |= (i < a.length ? a.charCodeAt(i) : 0) ^ (i < b.length ? b.charCodeAt(i) : 0);
  return diff === 0;
}

const refuse = (status, code, requestId) =>
  new Response(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics: requestId }] }), {
    status,
    headers: { "Content-Type": "application/fhir+json", "X-Request-Id": requestId },
  });

export default {
  async fetch(request, env) {
    const started = Date.now();
    const given = request.headers.get("X-Request-Id");
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
    const key = request.headers.get("X-Api-Key");
    if (!key || !sameSecret(key, env.API_KEY)) return refuse(401, "login", requestId);

    // /<source>/<rest>?<query>: the source is the first segment; the rest is checked and kept as sent.
    const raw = request.url;
    const originEnd = raw.indexOf("/", raw.indexOf("//") + 2);
    const q = raw.indexOf("?", originEnd);
    const path = q === -1 ? raw.slice(originEnd) : raw.slice(originEnd, q);
    const search = q === -1 ? "" : raw.slice(q);
    const rest = path.slice(path.indexOf("/", 1));
    const segments = rest.slice(1).split("/");
    for (const segment of segments) {
      let decoded;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        return refuse(400, "invalid", requestId);
      }
      if (decoded === "" || decoded === "." || decoded === ".." || decoded.includes("/") || decoded.includes("\\")) return refuse(400, "invalid", requestId);
    }

    const headers = new Headers();
    for (const [name, value] of request.headers) if (!HOP.has(name) && !CLIENT_ONLY.has(name) && !name.startsWith("cf-")) headers.append(name, value);
    headers.set("X-Request-Id", requestId);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 30_000);
    let upstream;
    try {
      upstream = await fetch(env.UPSTREAM_BASE + rest + search, { method: request.method, headers, redirect: "manual", signal: controller.signal });
    } catch {
      return refuse(502, "transient", requestId);
    } finally {
      clearTimeout(timer);
    }

    const rewrite = segments.length === 1 && (upstream.headers.get("Content-Type") ?? "").includes("json");
    const out = new Headers();
    for (const [name, value] of upstream.headers) {
      if (HOP.has(name) || UPSTREAM_ONLY.has(name) || (rewrite && name === "content-length")) continue;
      out.append(name, value);
    }
    out.set("X-Request-Id", requestId);
    const edgeBase = raw.slice(0, originEnd) + path.slice(0, path.indexOf("/", 1));
    const body = rewrite ? (await upstream.text()).replaceAll(env.UPSTREAM_BASE, edgeBase) : upstream.body;
    console.log(JSON.stringify({ msg: "request", requestId, method: request.method, source: "floor", route: segments.length === 1 ? segments[0] : `${segments[0]}/{id}`, status: upstream.status, attempts: 1, ms: Date.now() - started }));
    return new Response(body, { status: upstream.status, headers: out });
  },
};
