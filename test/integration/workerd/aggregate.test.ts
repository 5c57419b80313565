import { afterEach, describe, expect, it, vi } from "vitest";
import { createEdge } from "../../../src/app.ts";
import type { ForwardDeps } from "../../../src/upstream/forward.ts";

/**
 * The aggregate routes with stand-in upstreams, for what a real server cannot
 * show: how many connections are open at once, the overall deadline, clocks.
 * The contract's behaviour against real FHIR servers is in
 * test/integration/aggregate.test.ts.
 */
const KEY = { "X-Api-Key": "app-key-1" };
const ADMIN = { "X-Api-Key": "ops-key-2" };

function env(sources: string[], extra: Record<string, unknown> = {}) {
  const vars: Record<string, unknown> = { PROXY_API_KEYS: "app:app-key-1,ops:ops-key-2", PROXY_ADMIN_CLIENTS: "ops", ...extra };
  for (const s of sources) vars[`FHIR_SOURCE_${s.toUpperCase().replaceAll("-", "_")}`] = `fhir://${s}.example/fhir?max_attempts=1`;
  return vars;
}

const searchset = (host: string, ids: string[]) =>
  new Response(
    JSON.stringify({
      resourceType: "Bundle",
      type: "searchset",
      total: ids.length,
      entry: ids.map((id) => ({ fullUrl: `https://${host}/fhir/Patient/${id}`, resource: { resourceType: "Patient", id }, search: { mode: "match" } })),
    }),
    { headers: { "Content-Type": "application/fhir+json" } },
  );

function edge(fetch: ForwardDeps["fetch"], extra: Partial<ForwardDeps> = {}) {
  return createEdge({ deps: { fetch, sleep: async () => {}, random: () => 0, ...extra } });
}

describe("GET /aggregate/:resourceType fan-out limits", () => {
  it("never has more than six upstream requests open at once", async () => {
    const names = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];
    let open = 0;
    let peak = 0;
    const app = edge(async (req) => {
      open++;
      peak = Math.max(peak, open);
      await new Promise((r) => setTimeout(r, 20));
      open--;
      return searchset(new URL(req.url).host, ["1"]);
    });
    const res = await app.request("https://edge.example/aggregate/Patient", { headers: KEY }, env(names));
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { total: number; entry: unknown[] };
    expect(bundle.total).toBe(9);
    expect(peak).toBe(6);
  });

  it("answers within AGGREGATE_TIMEOUT: a source still running is a timeout outcome entry", async () => {
    const app = edge(async (req) => {
      if (req.url.startsWith("https://slow.example")) {
        return new Promise((_, reject) => req.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
      }
      return searchset("fast.example", ["f1"]);
    });
    const res = await app.request("https://edge.example/aggregate/Patient", { headers: KEY }, env(["fast", "slow"], { AGGREGATE_TIMEOUT: "0.2" }));
    // The slow source never answers by itself: an answer at all means the timeout cut it off.
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { total?: number; entry: Array<{ search: { mode: string }; resource: { issue?: Array<{ code: string; diagnostics: string }> } }> };
    expect(bundle.total).toBeUndefined();
    const outcome = bundle.entry.find((e) => e.search.mode === "outcome")!;
    expect(outcome.resource.issue![0]).toMatchObject({ code: "timeout" });
    expect(outcome.resource.issue![0]!.diagnostics).toContain("slow");
  });

  it("after AGGREGATE_TIMEOUT, a source still retrying sees no further attempt", async () => {
    let slowAttempts = 0;
    const app = edge(
      async (req) => {
        if (!req.url.startsWith("https://slow.example")) return searchset("fast.example", ["f1"]);
        slowAttempts++;
        return new Response("busy", { status: 503 });
      },
      { sleep: () => new Promise((r) => setTimeout(r, 30)) },
    );
    const vars = { ...env(["fast"], { AGGREGATE_TIMEOUT: "0.2" }), FHIR_SOURCE_SLOW: "fhir://slow.example/fhir?max_attempts=20" };
    const res = await app.request("https://edge.example/aggregate/Patient", { headers: KEY }, vars);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const atAnswer = slowAttempts;
    expect(atAnswer).toBeGreaterThan(0);
    // Long enough for several more of its 30 ms backoffs, had its retry loop kept going.
    await new Promise((r) => setTimeout(r, 300));
    expect(slowAttempts).toBe(atAnswer);
  });

  it("/aggregate/<Type>/<more> is no route (not a source named aggregate)", async () => {
    const res = await edge(async () => searchset("x", [])).request("https://edge.example/aggregate/Patient/1", { headers: KEY }, env(["a"]));
    expect(res.status).toBe(404);
    expect(((await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> }).issue[0]!.details.coding[0]!.code).toBe("route-not-found");
  });

  it("other methods: 405 with Allow", async () => {
    const res = await edge(async () => searchset("x", [])).request("https://edge.example/aggregate/Patient", { method: "DELETE", headers: KEY }, env(["a"]));
    expect(res.status).toBe(405);
    expect(res.headers.get("Allow")).toBe("GET, HEAD");
  });
});

describe("GET /aggregate/:resourceType cursors", () => {
  const pagesOf = (req: Request) => {
    const url = new URL(req.url);
    const offset = Number(url.searchParams.get("_offset") ?? 0);
    const ids = ["1", "2", "3"].slice(offset, offset + 1);
    const link = offset < 2 ? [{ relation: "next", url: `https://${url.host}/fhir/Patient?_count=1&_offset=${offset + 1}` }] : [];
    return json({ resourceType: "Bundle", type: "searchset", total: 3, link, entry: ids.map((id) => ({ resource: { resourceType: "Patient", id } })) });
  };
  const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { "Content-Type": "application/fhir+json" } });

  it("without AGGREGATE_CURSOR_SECRET, next links work on the isolate that made them", async () => {
    const app = edge(async (req) => pagesOf(req));
    const ids: string[] = [];
    let url: string | undefined = "https://edge.example/aggregate/Patient?_count=1";
    while (url) {
      const page = (await (await app.request(url, { headers: KEY }, env(["a"]))).json()) as { entry: Array<{ resource: { id: string } }>; link: Array<{ relation: string; url: string }> };
      ids.push(...page.entry.map((e) => e.resource.id));
      url = page.link.find((l) => l.relation === "next")?.url;
    }
    expect(ids).toEqual(["1", "2", "3"]);
  });

  it("a misconfigured source is reported on the first page, then left out; total stays absent", async () => {
    const app = edge(async (req) => pagesOf(req));
    const vars = env(["a"], { FHIR_SOURCE_BROKEN: "fhir://broken.example/fhir?max_attempts=zero" });
    type Page = { total?: number; entry: Array<{ search?: { mode: string }; resource: { id?: string } }>; link: Array<{ relation: string; url: string }> };
    const pages: Page[] = [];
    let url: string | undefined = "https://edge.example/aggregate/Patient?_count=1";
    while (url) {
      const res = await app.request(url, { headers: KEY }, vars);
      expect(res.status).toBe(200);
      const page = (await res.json()) as Page;
      pages.push(page);
      url = page.link.find((l) => l.relation === "next")?.url;
    }
    expect(pages.map((p) => p.entry.filter((e) => e.search?.mode === "outcome").length)).toEqual([1, 0, 0]);
    expect(pages.flatMap((p) => p.entry.filter((e) => e.search?.mode !== "outcome").map((e) => e.resource.id))).toEqual(["1", "2", "3"]);
    expect(pages.every((p) => p.total === undefined)).toBe(true);
  });

  it("an expired cursor: 400 cursor-expired, nothing fetched", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const seen: string[] = [];
    const app = edge(
      async (req) => {
        seen.push(req.url);
        return pagesOf(req);
      },
      { now: () => now },
    );
    const vars = env(["a"], { AGGREGATE_CURSOR_SECRET: "unit-test-cursor-secret-0123456789" });
    const first = (await (await app.request("https://edge.example/aggregate/Patient?_count=1", { headers: KEY }, vars)).json()) as { link: Array<{ relation: string; url: string }> };
    const next = first.link.find((l) => l.relation === "next")!.url;
    now += 3600_000;
    seen.length = 0;
    const res = await app.request(next, { headers: KEY }, vars);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> }).issue[0]!.details.coding[0]!.code).toBe("cursor-expired");
    expect(seen).toEqual([]);
  });
});

describe("GET /metadata", () => {
  it("is public, R4, names the sources and endpoints, and the edge's security; nothing about an upstream", async () => {
    const res = await edge(async () => new Response(null, { status: 500 })).request("https://edge.example/metadata", {}, env(["epic", "cerner"], { FHIR_SOURCE_EPIC: "fhir://epic.example/fhir?token=SECRET-TOKEN" }));
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("application/fhir+json");
    const text = await res.text();
    expect(text).not.toContain("SECRET-TOKEN");
    expect(text).not.toContain("epic.example");
    const statement = JSON.parse(text) as {
      resourceType: string;
      fhirVersion: string;
      kind: string;
      software: { name: string; version: string };
      rest: Array<{ mode: string; security: { description: string }; extension: Array<{ url: string; extension: Array<{ url: string; valueString?: string; valueUrl?: string }> }> }>;
    };
    expect(statement).toMatchObject({ resourceType: "CapabilityStatement", fhirVersion: "4.0.1", kind: "instance", software: { name: "fhir-edge" } });
    const rest = statement.rest[0]!;
    expect(rest.security.description).toContain("API key");
    const sources = rest.extension.filter((e) => e.url.endsWith("/source")).map((e) => e.extension.find((x) => x.url === "base")!.valueUrl);
    expect(sources).toEqual(["https://edge.example/cerner", "https://edge.example/epic"]);
    const endpoints = rest.extension.filter((e) => e.url.endsWith("/endpoint")).map((e) => e.extension.find((x) => x.url === "url")!.valueUrl);
    expect(endpoints).toEqual(["https://edge.example/aggregate/{resourceType}", "https://edge.example/aggregate", "https://edge.example/webhooks/{channel}"]);
  });

  it("with PROXY_AUTH=jwt, says SMART-on-FHIR", async () => {
    const res = await edge(async () => new Response(null)).request(
      "https://edge.example/metadata",
      {},
      env(["a"], { PROXY_AUTH: "jwt", PROXY_JWT_JWKS_URL: "https://idp.example/jwks", PROXY_JWT_ISSUER: "https://idp.example", PROXY_JWT_AUDIENCE: "edge" }),
    );
    const statement = (await res.json()) as { rest: Array<{ security: { service: Array<{ coding: Array<{ code: string }> }> } }> };
    expect(statement.rest[0]!.security.service[0]!.coding[0]!.code).toBe("SMART-on-FHIR");
  });

  it("is routed before /:source: /metadata is the edge's, /<source>/metadata the source's", async () => {
    const seen: string[] = [];
    const app = edge(async (req) => {
      seen.push(req.url);
      return new Response(JSON.stringify({ resourceType: "CapabilityStatement", rest: [{ mode: "server" }] }), { headers: { "Content-Type": "application/fhir+json" } });
    });
    expect(((await (await app.request("https://edge.example/metadata", {}, env(["a"]))).json()) as { software: { name: string } }).software.name).toBe("fhir-edge");
    expect(seen).toEqual([]);
    await app.request("https://edge.example/a/metadata", {}, env(["a"]));
    expect(seen).toEqual(["https://a.example/fhir/metadata"]);
  });
});

describe("GET /status: reachability", () => {
  it("probes each source's metadata once a minute per isolate, without credentials", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const probes: Request[] = [];
    const app = edge(
      async (req) => {
        probes.push(req);
        if (req.url.startsWith("https://down.example")) throw new TypeError("connect ECONNREFUSED");
        if (req.url.startsWith("https://origin-down.example")) return new Response("origin is down", { status: 521 });
        return new Response("{}", { status: 200 });
      },
      { now: () => now },
    );
    const vars = env(["up", "down", "origin-down"], { FHIR_SOURCE_UP: "fhir://up.example/fhir?token=UP-TOKEN", FHIR_SOURCE_ORIGIN_DOWN: "fhir://origin-down.example/fhir" });
    const status = async () =>
      ((await (await app.request("https://edge.example/status", { headers: ADMIN }, vars)).json()) as { sources: Array<{ name: string; reachability: { reachable: boolean; status?: number; error?: string } }> }).sources;
    const first = await status();
    expect(first.find((s) => s.name === "up")!.reachability).toMatchObject({ reachable: true, status: 200 });
    expect(first.find((s) => s.name === "down")!.reachability).toMatchObject({ reachable: false, error: "upstream-unreachable" });
    expect(first.find((s) => s.name === "origin-down")!.reachability).toMatchObject({ reachable: false, status: 521 });
    expect(probes.map((p) => p.url).sort()).toEqual(["https://down.example/fhir/metadata", "https://origin-down.example/fhir/metadata", "https://up.example/fhir/metadata"]);
    expect(probes.every((p) => p.headers.get("Authorization") === null)).toBe(true);
    now += 30_000;
    await status();
    expect(probes).toHaveLength(3);
    now += 31_000;
    await status();
    expect(probes).toHaveLength(6);
  });
});

describe("ACCESS_LOG=errors and the aggregate routes", () => {
  afterEach(() => vi.restoreAllMocks());

  /** The request ids logged while `run` runs. */
  async function logged(run: () => Response | Promise<Response>): Promise<string[]> {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    const res = await run();
    expect(res.status).toBe(200);
    return lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId);
  }
  const quiet = env(["a", "b"], { ACCESS_LOG: "errors" });
  const healthy = edge(async (req) => searchset(new URL(req.url).host, ["1"]));
  const bFails = edge(async (req) => (req.url.startsWith("https://b.example") ? new Response("down", { status: 500 }) : searchset("a.example", ["1"])));
  const get = (app: ReturnType<typeof edge>, id: string) => () => app.request("https://edge.example/aggregate/Patient", { headers: { ...KEY, "X-Request-Id": id } }, quiet);
  const batch = (app: ReturnType<typeof edge>, id: string) => () =>
    app.request(
      "https://edge.example/aggregate",
      {
        method: "POST",
        headers: { ...KEY, "X-Request-Id": id, "Content-Type": "application/fhir+json" },
        body: JSON.stringify({ resourceType: "Bundle", type: "batch", entry: ["a", "b"].map((s) => ({ request: { method: "GET", url: `${s}/Patient?name=x` } })) }),
      },
      quiet,
    );

  it("does not log a 200 where every source answered, however many sources were asked", async () => {
    expect(await logged(get(healthy, "agg-ok"))).toEqual([]);
    expect(await logged(batch(healthy, "batch-ok"))).toEqual([]);
  });

  it("logs a 200 in which a source or a batch entry failed", async () => {
    expect(await logged(get(bFails, "agg-partial"))).toEqual(["agg-partial"]);
    expect(await logged(batch(bFails, "batch-partial"))).toEqual(["batch-partial"]);
  });
});

describe("a next link too long to be followed", () => {
  it("is not given: the page ends with an outcome entry saying paging stops, never a link the edge would refuse", async () => {
    const names = ["s1", "s2", "s3", "s4", "s5", "s6"];
    // Each source has a next page behind a long (but legitimate) paging link.
    const app = edge(async (req) => {
      const host = new URL(req.url).host;
      return new Response(
        JSON.stringify({
          resourceType: "Bundle",
          type: "searchset",
          link: [{ relation: "next", url: `https://${host}/fhir/Patient?page=2&state=${"x".repeat(4000)}` }],
          entry: [{ fullUrl: `https://${host}/fhir/Patient/1`, resource: { resourceType: "Patient", id: "1" }, search: { mode: "match" } }],
        }),
        { headers: { "Content-Type": "application/fhir+json" } },
      );
    });
    const res = await app.request("https://edge.example/aggregate/Patient?_count=6", { headers: KEY }, env(names));
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { link: Array<{ relation: string }>; entry: Array<{ search: { mode: string }; resource: { issue?: Array<{ code: string; details: { coding: Array<{ code: string }> } }> } }> };
    expect(bundle.link.map((l) => l.relation)).not.toContain("next");
    expect(bundle.entry.filter((e) => e.search.mode === "match")).toHaveLength(6);
    const outcome = bundle.entry.find((e) => e.search.mode === "outcome")!;
    expect(outcome.resource.issue![0]).toMatchObject({ code: "too-costly", details: { coding: [{ code: "cursor-too-large" }] } });
  });
});

describe("every failed source gets its own outcome entry", () => {
  it("two of three sources down: 200, the third's matches, and one outcome naming each failed source", async () => {
    const app = edge(async (req) => {
      const host = new URL(req.url).host;
      return host === "up.example" ? searchset(host, ["u1", "u2"]) : new Response("down", { status: 503 });
    });
    const res = await app.request("https://edge.example/aggregate/Patient", { headers: KEY }, env(["up", "down-1", "down-2"]));
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { entry: Array<{ search: { mode: string }; resource: { id?: string; issue?: Array<{ diagnostics: string }> } }> };
    expect(bundle.entry.filter((e) => e.search.mode === "match").map((e) => e.resource.id)).toEqual(["u1", "u2"]);
    const outcomes = bundle.entry.filter((e) => e.search.mode === "outcome").map((e) => e.resource.issue![0]!.diagnostics);
    expect(outcomes).toHaveLength(2);
    expect(outcomes.some((d) => d.includes("down-1"))).toBe(true);
    expect(outcomes.some((d) => d.includes("down-2"))).toBe(true);
  });
});
