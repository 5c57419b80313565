import { Hono } from "hono";
import { describe, expect, it, vi } from "vitest";
import pkg from "../../../package.json";
import { createEdge, type AggregateHandler, type Resource, type TransformHandler } from "../../../src/index.ts";
import { compileTransforms } from "../../../src/transform/transforms.ts";
import { VERSION } from "../../../src/version.ts";
import type { ForwardDeps } from "../../../src/upstream/forward.ts";

const ENV = { PROXY_API_KEYS: "app:app-key-1", FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4?token=T", FHIR_SOURCE_LAB: "fhir://lab.example/r4?token=L" };
const KEY = { "X-Api-Key": "app-key-1" };
const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { "Content-Type": "application/fhir+json" } });

function upstream(answer: (url: URL) => unknown) {
  const seen: string[] = [];
  const deps: Partial<ForwardDeps> = {
    fetch: async (req) => {
      seen.push(req.url);
      return json(answer(new URL(req.url)));
    },
  };
  return { seen, deps };
}

const BASES: Record<string, string> = { "ehr.example": "https://ehr.example/fhir/R4", "lab.example": "https://lab.example/r4" };
const patientsOf = (host: string) => ({
  resourceType: "Bundle",
  type: "searchset",
  total: 1,
  entry: [
    { fullUrl: `${BASES[host]}/Patient/p1`, resource: { resourceType: "Patient", id: "p1", active: false }, search: { mode: "match" } },
    { fullUrl: `${BASES[host]}/Organization/o1`, resource: { resourceType: "Organization", id: "o1" }, search: { mode: "include" } },
  ],
});

describe("4. library: transform handlers", () => {
  const markActive: TransformHandler = (resource) => ({ ...resource, active: true });

  it("change a single resource of their type; other types stream through untouched", async () => {
    const up = upstream((url) => (url.pathname.endsWith("/Patient/p1") ? { resourceType: "Patient", id: "p1", active: false } : { resourceType: "Observation", id: "x" }));
    const app = createEdge({ deps: up.deps, transforms: { Patient: markActive } });
    expect(await (await app.request("https://edge.example/ehr/Patient/p1", { headers: KEY }, ENV)).json()).toEqual({ resourceType: "Patient", id: "p1", active: true });
    expect(await (await app.request("https://edge.example/ehr/Observation/x", { headers: KEY }, ENV)).text()).toBe('{"resourceType":"Observation","id":"x"}');
  });

  it("change the Bundle entries of their type in a search, and get the source", async () => {
    const sources: string[] = [];
    const up = upstream(() => patientsOf("ehr.example"));
    const app = createEdge({
      deps: up.deps,
      transforms: {
        Patient: (p, ctx) => {
          sources.push(ctx.source);
          return { ...p, active: true };
        },
      },
    });
    const bundle = (await (await app.request("https://edge.example/ehr/Patient?name=x", { headers: KEY }, ENV)).json()) as { entry: Array<{ fullUrl: string; resource: Resource }> };
    expect(bundle.entry.map((e) => e.resource)).toEqual([{ resourceType: "Patient", id: "p1", active: true }, { resourceType: "Organization", id: "o1" }]);
    expect(bundle.entry[0]!.fullUrl).toBe("https://edge.example/ehr/Patient/p1");
    expect(sources).toEqual(["ehr"]);
  });

  it("a handler that throws is a 500 transform-failed naming the type, never the resource", async () => {
    const up = upstream(() => ({ resourceType: "Patient", id: "p1", name: [{ family: "Secretname" }] }));
    const app = createEdge({
      deps: up.deps,
      transforms: {
        Patient: () => {
          throw new Error("boom on Secretname");
        },
      },
    });
    const res = await app.request("https://edge.example/ehr/Patient/p1", { headers: KEY }, ENV);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).toContain("transform-failed");
    expect(text).not.toContain("Secretname");
  });

  it("are checked when the edge is built", () => {
    expect(() => createEdge({ transforms: { patient: markActive } })).toThrow(TypeError);
    expect(() => compileTransforms({ Patient: "no" as unknown as TransformHandler })).toThrow(TypeError);
    expect(compileTransforms({})).toBeUndefined();
  });
});

describe("4. library: custom aggregate handlers", () => {
  it("replace the merge for their type, with searches through the edge", async () => {
    const up = upstream((url) => patientsOf(url.host));
    const vitals: AggregateHandler = async (ctx) => {
      const results = await ctx.searchEach({ subject: ctx.params.get("patient") ?? "" });
      return {
        resourceType: "Bundle",
        type: "searchset",
        entry: results.flatMap((r) => (r.ok ? (r.bundle.entry ?? []).filter((e) => e.search?.mode === "match") : [{ resource: r.outcome, search: { mode: "outcome" as const } }])),
      };
    };
    const app = createEdge({ deps: up.deps, aggregates: { Observation: vitals } });
    const res = await app.request("https://edge.example/aggregate/Observation?patient=p1&sources=lab,ehr", { headers: KEY }, ENV);
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { entry: Array<{ fullUrl: string }> };
    expect(bundle.entry.map((e) => e.fullUrl)).toEqual(["https://edge.example/lab/Patient/p1", "https://edge.example/ehr/Patient/p1"]);
    expect(up.seen.sort()).toEqual(["https://ehr.example/fhir/R4/Observation?subject=p1", "https://lab.example/r4/Observation?subject=p1"]);
  });

  it("searchEach at AGGREGATE_TIMEOUT: a source still running is a timeout result, and its upstream request is cancelled", async () => {
    let cancelled = false;
    const deps: Partial<ForwardDeps> = {
      fetch: async (req) => {
        if (req.url.startsWith("https://lab.example")) {
          return new Promise((_, reject) =>
            req.signal.addEventListener("abort", () => {
              cancelled = true;
              reject(new DOMException("aborted", "AbortError"));
            }),
          );
        }
        return json(patientsOf("ehr.example"));
      },
    };
    const each: AggregateHandler = async (ctx) => {
      const results = await ctx.searchEach();
      return { resourceType: "Bundle", type: "collection", entry: results.map((r) => ({ resource: r.ok ? r.bundle : r.outcome })) };
    };
    const res = await createEdge({ deps, aggregates: { Observation: each } }).request("https://edge.example/aggregate/Observation?sources=ehr,lab", { headers: KEY }, { ...ENV, AGGREGATE_TIMEOUT: "0.2" });
    // The slow source never answers by itself: an answer at all means the timeout cut it off.
    const bundle = (await res.json()) as { entry: Array<{ resource: { resourceType: string; issue?: Array<{ code: string }> } }> };
    expect(bundle.entry.map((e) => e.resource.resourceType)).toEqual(["Bundle", "OperationOutcome"]);
    expect(bundle.entry[1]!.resource.issue![0]!.code).toBe("timeout");
    expect(cancelled).toBe(true);
  });
});

describe("an unexpected error in a handler", () => {
  it("is a 500 internal-error OperationOutcome; neither the answer nor the log carries its message", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((line: unknown) => void lines.push(String(line)));
    try {
      const boom: AggregateHandler = async () => {
        throw new Error("Patient Jane Doe born 1970-01-01");
      };
      const res = await createEdge({ aggregates: { Patient: boom } }).request("https://edge.example/aggregate/Patient", { headers: KEY }, ENV);
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "exception", details: { coding: [{ code: "internal-error" }] } }] });
      expect(text).not.toContain("Jane");
      expect(lines.join("\n")).toContain('"error":"Error"');
      expect(lines.join("\n")).not.toContain("Jane");
    } finally {
      spy.mockRestore();
    }
  });
});

describe("4. library: mounted under a path of another hono app", () => {
  const up = () => upstream((url) => ({ ...patientsOf(url.host), link: [{ relation: "next", url: `https://${url.host}${url.pathname}?page=2` }] }));

  it("keeps the mount path in every URL it writes: proxy, aggregate, metadata", async () => {
    const parent = new Hono();
    parent.get("/", (c) => c.text("my app"));
    parent.route("/fhir", createEdge({ deps: up().deps }));

    expect(await (await parent.request("https://app.example/", {}, ENV)).text()).toBe("my app");

    const proxied = (await (await parent.request("https://app.example/fhir/ehr/Patient", { headers: KEY }, ENV)).json()) as { link: Array<{ url: string }>; entry: Array<{ fullUrl: string }> };
    expect(proxied.link[0]!.url).toBe("https://app.example/fhir/ehr/Patient?page=2");
    expect(proxied.entry[0]!.fullUrl).toBe("https://app.example/fhir/ehr/Patient/p1");

    const merged = (await (await parent.request("https://app.example/fhir/aggregate/Patient?_count=1", { headers: KEY }, ENV)).json()) as { link: Array<{ relation: string; url: string }>; entry: Array<{ fullUrl: string }> };
    expect(merged.entry.map((e) => e.fullUrl)).toEqual(["https://app.example/fhir/ehr/Patient/p1", "https://app.example/fhir/ehr/Organization/o1"]);
    expect(merged.link.find((l) => l.relation === "next")!.url).toMatch(/^https:\/\/app\.example\/fhir\/aggregate\/Patient\?_cursor=/);

    const statement = (await (await parent.request("https://app.example/fhir/metadata", {}, ENV)).json()) as { implementation: { url: string } };
    expect(statement.implementation.url).toBe("https://app.example/fhir");
  });

  it("errors under the mount are still OperationOutcomes", async () => {
    const parent = new Hono();
    parent.route("/fhir", createEdge({ deps: up().deps }));
    const res = await parent.request("https://app.example/fhir/nope/Patient", { headers: KEY }, ENV);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { resourceType: string }).resourceType).toBe("OperationOutcome");
  });
});

describe("4. library: the package", () => {
  it("VERSION is package.json's version", () => {
    expect(VERSION).toBe(pkg.version);
  });
});
