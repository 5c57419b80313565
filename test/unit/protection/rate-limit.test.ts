/**
 * Per-client rate limits (design.md "Protection under load"): which binding
 * counts which request, the 429 a client sees, and PROXY_RATE_LIMITS'
 * configuration errors. The bindings here are stand-ins that record the keys
 * they were asked about; the real binding runs in test/integration/protection.test.ts.
 */
import { describe, expect, it } from "vitest";
import { createEdge } from "../../../src/app.ts";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import type { ForwardDeps } from "../../../src/upstream/forward.ts";
import { rateLimitRetryAfter } from "../../../src/protection/rate-limit.ts";

/** A limiter that allows `limit` calls per key, recording every key. */
function limiter(limit: number) {
  const counts = new Map<string, number>();
  const keys: string[] = [];
  return {
    keys,
    binding: {
      limit: async ({ key }: { key: string }) => {
        keys.push(key);
        const n = (counts.get(key) ?? 0) + 1;
        counts.set(key, n);
        return { success: n <= limit };
      },
    },
  };
}

const upstream: Partial<ForwardDeps> = {
  fetch: async () => new Response('{"resourceType":"Patient","id":"1"}', { headers: { "Content-Type": "application/fhir+json" } }),
};

function env(extra: Record<string, unknown>) {
  return {
    PROXY_API_KEYS: "etl:etl-key,app:app-key,ops:ops-key",
    PROXY_ADMIN_CLIENTS: "ops",
    FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4",
    FHIR_SOURCE_LAB: "fhir://lab.example/fhir/R4",
    ...extra,
  };
}
const get = (path: string, key: string, vars: Record<string, unknown>) =>
  createEdge({ deps: upstream }).request(`https://edge.example${path}`, { headers: { Authorization: `Bearer ${key}` } }, vars);

describe("PROXY_RATE_LIMITS maps clients to bindings", () => {
  it("counts a named client on its binding and every other client on *; over the limit is 429 throttled with Retry-After", async () => {
    const bulk = limiter(2);
    const fallback = limiter(1);
    const vars = env({ PROXY_RATE_LIMITS: "etl:BULK,*:DEFAULT", BULK: bulk.binding, DEFAULT: fallback.binding });
    expect((await get("/ehr/Patient/1", "etl-key", vars)).status).toBe(200);
    expect((await get("/ehr/Patient/1", "etl-key", vars)).status).toBe(200);
    const over = await get("/ehr/Patient/1", "etl-key", vars);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    const body = (await over.json()) as { issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> };
    expect(body.issue[0]?.code).toBe("throttled");
    expect(body.issue[0]?.details.coding[0]?.code).toBe("rate-limited");
    expect(bulk.keys).toEqual(["client etl", "client etl", "client etl"]);

    expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(200);
    expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(429);
    expect(fallback.keys).toEqual(["client app", "client app"]);
  });

  it("leaves a client mapped to no binding unlimited", async () => {
    const bulk = limiter(0);
    const vars = env({ PROXY_RATE_LIMITS: "etl:BULK", BULK: bulk.binding });
    for (let i = 0; i < 5; i++) expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(200);
    expect(bulk.keys).toEqual([]);
  });

  it("with PROXY_RATE_LIMIT_KEY=client-and-source, counts each source (and the aggregate, and each channel's inbox) apart", async () => {
    const l = limiter(1);
    const vars = env({ PROXY_RATE_LIMITS: "*:L", L: l.binding, PROXY_RATE_LIMIT_KEY: "client-and-source" });
    expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(200);
    expect((await get("/lab/Patient/1", "app-key", vars)).status).toBe(200);
    expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(429);
    await get("/aggregate/Patient", "app-key", vars);
    await get("/channels/alerts/ws", "app-key", vars);
    expect(l.keys).toEqual(["client app ehr", "client app lab", "client app ehr", "client app aggregate", "client app channel:alerts"]);
  });

  it("goes on when the binding itself fails: a broken limiter is not an outage", async () => {
    const vars = env({ PROXY_RATE_LIMITS: "*:L", L: { limit: async () => Promise.reject(new Error("down")) } });
    expect((await get("/ehr/Patient/1", "app-key", vars)).status).toBe(200);
  });
});

describe("admin routes and /webhooks have their own limits", () => {
  it("counts /status on PROXY_RATE_LIMIT_ADMIN per admin client, not on the client's own binding", async () => {
    const admin = limiter(1);
    const clients = limiter(100);
    const vars = env({ PROXY_RATE_LIMITS: "*:C", C: clients.binding, PROXY_RATE_LIMIT_ADMIN: "A", A: admin.binding });
    expect((await get("/status", "ops-key", vars)).status).toBe(200);
    expect((await get("/status", "ops-key", vars)).status).toBe(429);
    expect(admin.keys).toEqual(["admin ops", "admin ops"]);
    expect(clients.keys).toEqual([]);
  });

  it("counts POST /webhooks/<channel> on PROXY_RATE_LIMIT_WEBHOOKS per channel and caller address", async () => {
    const hooks = limiter(0);
    const vars = env({ PROXY_RATE_LIMIT_WEBHOOKS: "W", W: hooks.binding });
    const res = await createEdge().request("https://edge.example/webhooks/adt", { method: "POST", headers: { "CF-Connecting-IP": "192.0.2.7" }, body: "{}" }, vars);
    expect(res.status).toBe(429);
    expect(hooks.keys).toEqual(["webhooks adt 192.0.2.7"]);
  });

  it("counts console sign-in attempts on PROXY_RATE_LIMIT_ADMIN per caller address, before any key is checked", async () => {
    const admin = limiter(1);
    const vars = env({ PROXY_RATE_LIMIT_ADMIN: "A", A: admin.binding });
    const signIn = () =>
      createEdge().request(
        "https://edge.example/admin/console/sign-in",
        { method: "POST", headers: { Origin: "https://edge.example", "Content-Type": "application/x-www-form-urlencoded", "CF-Connecting-IP": "192.0.2.9" }, body: "credential=wrong" },
        vars,
      );
    expect((await signIn()).status).toBe(401);
    expect((await signIn()).status).toBe(429);
    expect(admin.keys).toEqual(["sign-in 192.0.2.9", "sign-in 192.0.2.9"]);
  });

  it("counts Bulk Data status and file URLs on the client's own binding", async () => {
    const l = limiter(0);
    const vars = env({ PROXY_RATE_LIMITS: "*:L", L: l.binding });
    const res = await get("/ehr/$bulk/not-a-token", "app-key", vars);
    expect(res.status).toBe(429);
    expect(l.keys).toEqual(["client app"]);
  });
});

describe("configuration errors", () => {
  it("reports a malformed entry, a duplicate, and a name that is not a rate-limit binding; the rest apply", () => {
    const config = readEdgeConfig(env({ PROXY_RATE_LIMITS: "etl:BULK,justaname,etl:BULK,*:NOPE,app:lower-case!", BULK: { limit: async () => ({ success: true }) }, NOPE: "a string" }));
    const issues = config.issues.filter((i) => i.subject === "PROXY_RATE_LIMITS").map((i) => i.code);
    expect(issues).toEqual(["invalid-value", "duplicate-client", "unknown-binding", "invalid-value"]);
    expect(config.rateLimits.clients.get("etl")).toBe("BULK");
    expect(config.rateLimits.otherClients).toBeUndefined();
  });

  it("reports an unknown PROXY_RATE_LIMIT_ADMIN binding and a bad PROXY_RATE_LIMIT_KEY, and lists them in /status", async () => {
    const vars = env({ PROXY_RATE_LIMIT_ADMIN: "MISSING", PROXY_RATE_LIMIT_KEY: "ip" });
    const res = await get("/status", "ops-key", vars);
    const status = (await res.json()) as { configurationErrors: Array<{ subject: string; code: string }>; rateLimits: { keyBy: string } };
    expect(status.configurationErrors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ subject: "PROXY_RATE_LIMIT_ADMIN", code: "unknown-binding" }),
        expect.objectContaining({ subject: "PROXY_RATE_LIMIT_KEY", code: "invalid-value" }),
      ]),
    );
    expect(status.rateLimits.keyBy).toBe("client");
  });
});

describe("Retry-After of a rate-limited answer", () => {
  it("is the time to the next 10-second mark, 1 to 10 s", () => {
    expect(rateLimitRetryAfter(0)).toBe(10);
    expect(rateLimitRetryAfter(9_999)).toBe(1);
    expect(rateLimitRetryAfter(123_456)).toBe(7);
  });
});
