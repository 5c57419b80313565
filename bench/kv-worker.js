/**
 * An in-memory KV namespace for the bench's workerd: the service a
 * `kvNamespace` binding talks to (GET, PUT and DELETE of `/<key>`, keys
 * URL-encoded when `urlencoded=true`), with expiry. The edge reads KV only
 * when its in-isolate token is due, so this is never on the hot path.
 */
const entries = new Map();

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const raw = url.pathname.slice(1);
    const key = url.searchParams.get("urlencoded") === "true" ? decodeURIComponent(raw) : raw;
    const now = Date.now() / 1000;
    switch (request.method) {
      case "GET": {
        const entry = entries.get(key);
        if (!entry || (entry.expiration !== undefined && entry.expiration <= now)) return new Response("Not Found", { status: 404 });
        const headers = entry.expiration === undefined ? {} : { "CF-Expiration": String(entry.expiration) };
        return new Response(entry.value, { headers });
      }
      case "PUT": {
        const ttl = url.searchParams.get("expiration_ttl");
        const at = url.searchParams.get("expiration");
        const expiration = at !== null ? Number(at) : ttl !== null ? now + Number(ttl) : undefined;
        entries.set(key, { value: await request.arrayBuffer(), expiration });
        return new Response(null);
      }
      case "DELETE":
        entries.delete(key);
        return new Response(null);
      default:
        return new Response("Method Not Allowed", { status: 405 });
    }
  },
};
