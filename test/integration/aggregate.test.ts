/**
 * `GET /aggregate/:resourceType` and `POST /aggregate` (docs/contract.md#one-search-across-sources-get-aggregateresourcetype),
 * `/metadata` and `/status` ("Operations and discovery"), against two real
 * FHIR servers with different data: "east" (offset paging, a static token)
 * and "west" (HAPI-style `_getpages` paging, no auth), plus "gone", a closed
 * port.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Client, type FhirResource } from "fhir-kit-client";
import type { Patient } from "@medplum/fhirtypes";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const EAST_TOKEN = "east-upstream-token-5d4c3b";
const CURSOR_SECRET = "cursor-secret-for-tests-0123456789abcdef";
const APP = { "X-Api-Key": "app-key-0123456789" };
const OTHER = { "X-Api-Key": "other-key-0123456789" };
const OPS = { "X-Api-Key": "ops-key-0123456789" };

interface Entry {
  fullUrl?: string;
  resource: { resourceType: string; id?: string; birthDate?: string; issue?: Array<{ code: string; diagnostics: string; details?: { coding?: Array<{ code: string }> } }> };
  search?: { mode: string };
  response?: { status: string; outcome?: { issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> } };
}
interface Searchset {
  resourceType: string;
  type: string;
  total?: number;
  link: Array<{ relation: string; url: string }>;
  entry?: Entry[];
}

let east: FhirServer;
let west: FhirServer;
let gonePort: number;
let edge: Edge;

const patients = (prefix: string, n: number): Patient[] => demoPatients(n).map((p, i) => ({ ...p, id: `${prefix}-${i + 1}` }));
const matches = (b: Searchset) => (b.entry ?? []).filter((e) => e.search?.mode === "match");
const outcomes = (b: Searchset) => (b.entry ?? []).filter((e) => e.search?.mode === "outcome");
const next = (b: Searchset) => b.link.find((l) => l.relation === "next")?.url;
const upstreamRequests = () => east.requests.length + west.requests.length;

async function get(path: string, headers: Record<string, string> = APP, base = edge) {
  const res = await base.fetch(path, { headers });
  return { res, body: (await res.json()) as Searchset & { issue?: Array<{ code: string; diagnostics: string; details: { coding: Array<{ code: string }> } }> } };
}

/** Follows link[next] to the end; returns every page. */
async function pageToEnd(path: string): Promise<Searchset[]> {
  const pages: Searchset[] = [];
  let url: string | undefined = `${edge.url}${path.replace(/^\//, "")}`;
  while (url && pages.length < 50) {
    const res = await fetch(url, { headers: APP });
    expect(res.status).toBe(200);
    const page = (await res.json()) as Searchset;
    pages.push(page);
    url = next(page);
  }
  return pages;
}

beforeAll(async () => {
  east = await startFhirServer({ expectAuthorization: `Bearer ${EAST_TOKEN}` });
  west = await startFhirServer({ basePath: "/baseR4", paging: "getpages" });
  await east.seed(patients("east", 13));
  await west.seed(patients("west", 7));
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  gonePort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));
  edge = await startEdge(
    {
      PROXY_API_KEYS: `app:${APP["X-Api-Key"]},other:${OTHER["X-Api-Key"]},ops:${OPS["X-Api-Key"]}`,
      PROXY_ADMIN_CLIENTS: "ops",
      FHIR_SOURCE_EAST: `fhir+http://${new URL(east.url).host}/fhir/R4?token=env:EAST_TOKEN&max_attempts=2&retry_backoff_factor=0.01`,
      FHIR_SOURCE_WEST: `fhir+http://${new URL(west.url).host}/baseR4?max_attempts=2&retry_backoff_factor=0.01`,
      FHIR_SOURCE_GONE: `fhir+http://127.0.0.1:${gonePort}/fhir?max_attempts=1&timeout=1`,
      AGGREGATE_TIMEOUT: "2",
    },
    { EAST_TOKEN, AGGREGATE_CURSOR_SECRET: CURSOR_SECRET },
  );
});

afterAll(async () => {
  await edge?.close();
  await east?.close();
  await west?.close();
});

beforeEach(() => {
  east.reset();
  west.reset();
});

describe("GET /aggregate/:resourceType: one search, several sources, one searchset", () => {
  it("merges both sources: fullUrl at the entry's source, search.mode kept, total the sum", async () => {
    const { res, body } = await get("/aggregate/Patient?sources=east,west");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/fhir+json");
    expect(body).toMatchObject({ resourceType: "Bundle", type: "searchset", total: 20 });
    const urls = matches(body).map((e) => e.fullUrl);
    expect(urls).toHaveLength(20);
    expect(urls).toContain(`${edge.url}east/Patient/east-1`);
    expect(urls).toContain(`${edge.url}west/Patient/west-7`);
    expect(outcomes(body)).toEqual([]);
    expect(JSON.stringify(body)).not.toContain(east.url);
    expect(JSON.stringify(body)).not.toContain(west.url);
    expect(next(body)).toBeUndefined();
  });

  it("sends every other parameter to each source as the search, with that source's own credentials; never sources", async () => {
    const { body } = await get("/aggregate/Patient?sources=east,west&gender=female&_count=50");
    expect(body.total).toBe(6 + 3);
    expect(matches(body).every((e) => e.fullUrl!.includes("/Patient/"))).toBe(true);
    expect(east.requests.map((r) => r.path)).toEqual(["/fhir/R4/Patient?gender=female&_count=50"]);
    expect(west.requests.map((r) => r.path)).toEqual(["/baseR4/Patient?gender=female&_count=50"]);
    expect(east.requests[0]!.headers.authorization).toBe(`Bearer ${EAST_TOKEN}`);
    expect(west.requests[0]!.headers.authorization).toBeUndefined();
    expect(JSON.stringify([...east.requests, ...west.requests].map((r) => r.headers))).not.toContain(APP["X-Api-Key"]);
  });

  it("takes sources= repeated or as a comma list, and by default every source", async () => {
    expect((await get("/aggregate/Patient?sources=east&sources=west")).body.total).toBe(20);
    expect((await get("/aggregate/Patient?sources=west")).body.total).toBe(7);
    const all = await get("/aggregate/Patient");
    expect(all.res.status).toBe(200);
    expect(matches(all.body)).toHaveLength(20);
    expect(outcomes(all.body).map((e) => e.resource.issue![0]!.diagnostics)).toEqual([expect.stringContaining("Source gone")]);
    expect(all.body.total).toBeUndefined();
  });

  it("a source that is not on this edge: 400, nothing fetched", async () => {
    const { res, body } = await get("/aggregate/Patient?sources=east,nowhere");
    expect(res.status).toBe(400);
    expect(body.issue![0]!.details.coding[0]!.code).toBe("unknown-source");
    expect(upstreamRequests()).toBe(0);
  });
});

describe("GET /aggregate: a source that failed or timed out", () => {
  it("a source answering 503 past its retries: 200, its outcome entry naming it, the others' results, no total", async () => {
    east.failNext(2, { status: 503 });
    const { res, body } = await get("/aggregate/Patient?sources=east,west");
    expect(res.status).toBe(200);
    expect(matches(body)).toHaveLength(7);
    expect(body.total).toBeUndefined();
    const [failed] = outcomes(body);
    expect(failed!.resource.resourceType).toBe("OperationOutcome");
    expect(failed!.resource.issue![0]).toMatchObject({ code: "transient", diagnostics: expect.stringContaining("Source east answered 503") });
  });

  it("a closed port: an outcome entry (transient) naming the source", async () => {
    const { res, body } = await get("/aggregate/Patient?sources=gone,west");
    expect(res.status).toBe(200);
    expect(matches(body)).toHaveLength(7);
    expect(outcomes(body)[0]!.resource.issue![0]).toMatchObject({ code: "transient", diagnostics: expect.stringContaining("Source gone") });
  });

  it("a source slower than AGGREGATE_TIMEOUT: an outcome entry (timeout), and the answer comes in time", async () => {
    west.delayNext(1, 3500);
    const started = Date.now();
    const { res, body } = await get("/aggregate/Patient?sources=east,west");
    expect(Date.now() - started).toBeLessThan(3500);
    expect(res.status).toBe(200);
    expect(matches(body)).toHaveLength(13);
    expect(outcomes(body)[0]!.resource.issue![0]).toMatchObject({ code: "timeout", diagnostics: expect.stringContaining("Source west did not answer within the aggregate timeout") });
  });

  it("none answered: 502 OperationOutcome with an issue per source", async () => {
    east.failNext(2, { status: 500 });
    const { res, body } = await get("/aggregate/Patient?sources=east,gone");
    expect(res.status).toBe(502);
    expect(body.resourceType).toBe("OperationOutcome");
    expect(body.issue![0]!.details.coding[0]!.code).toBe("aggregate-no-source-answered");
    const text = JSON.stringify(body.issue);
    expect(text).toContain("Source east answered 500");
    expect(text).toContain("Source gone");
  });
});

describe("GET /aggregate: link[next] pages every source to its end", () => {
  it("with _count=4, every patient of both sources exactly once, at most 4 a page, the total on every page", async () => {
    const pages = await pageToEnd("/aggregate/Patient?sources=east,west&_count=4");
    const seen = pages.flatMap((p) => matches(p).map((e) => e.fullUrl!));
    expect(seen).toHaveLength(20);
    expect(new Set(seen).size).toBe(20);
    expect(seen.filter((u) => u.includes("/west/"))).toHaveLength(7);
    expect(pages.every((p) => matches(p).length <= 4 && p.total === 20)).toBe(true);
    expect(pages.slice(0, -1).every((p) => matches(p).length === 4)).toBe(true);
    for (const p of pages) for (const l of p.link) expect(l.url.startsWith(edge.url), l.url).toBe(true);
    // Both paging styles were followed at their sources: offset links (east), _getpages (west).
    expect(east.requests.some((r) => r.path.includes("_offset="))).toBe(true);
    expect(west.requests.some((r) => r.path.includes("_getpages="))).toBe(true);
  });

  it("with _sort=birthdate, the pages come out in one birthDate order across both sources", async () => {
    const pages = await pageToEnd("/aggregate/Patient?sources=east,west&_count=3&_sort=birthdate");
    const dates = pages.flatMap((p) => matches(p).map((e) => e.resource.birthDate!));
    expect(dates).toHaveLength(20);
    expect(dates).toEqual([...dates].sort());
    expect(new Set(pages.flatMap((p) => matches(p).map((e) => e.fullUrl))).size).toBe(20);
  });

  it("a source failing on a later page is asked again on the next one: nothing is lost", async () => {
    const first = await get("/aggregate/Patient?sources=east,west&_count=4");
    east.failNext(2, { status: 503 });
    const second = await fetch(next(first.body)!, { headers: APP });
    const secondPage = (await second.json()) as Searchset;
    expect(outcomes(secondPage)).toHaveLength(1);
    const rest = await pageToEnd(next(secondPage)!.slice(edge.url.length));
    const seen = [first.body, secondPage, ...rest].flatMap((p) => matches(p).map((e) => e.fullUrl!));
    expect(seen).toHaveLength(20);
    expect(new Set(seen).size).toBe(20);
  });

  it("a FHIR client pages it like any searchset", async () => {
    const client = new Client({ baseUrl: `${edge.url}aggregate`, customHeaders: APP });
    let bundle = (await client.search({ resourceType: "Patient", searchParams: { sources: "east,west", _count: 8 } })) as FhirResource & Searchset;
    let count = matches(bundle).length;
    while ((bundle = (await client.nextPage({ bundle: bundle as never })) as FhirResource & Searchset)) count += matches(bundle).length;
    expect(count).toBe(20);
  });
});

describe("GET /aggregate: a cursor altered in any way is 400, and nothing is fetched", () => {
  async function firstCursor(headers = APP) {
    const { body } = await get("/aggregate/Patient?sources=east,west&_count=2", headers);
    east.reset();
    west.reset();
    return next(body)!;
  }

  it("an altered payload, signature or added parameter: 400 cursor-invalid / cursor-with-search", async () => {
    const url = await firstCursor();
    const token = new URL(url).searchParams.get("_cursor")!;
    const [payload, signature] = token.split(".") as [string, string];
    const decoded = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { p: Array<{ a: string }> };
    decoded.p[0]!.a = `/Patient?_count=1000`;
    const forged = `${Buffer.from(JSON.stringify(decoded)).toString("base64url")}.${signature}`;
    const flipped = `${payload.slice(0, -1)}${payload.endsWith("A") ? "B" : "A"}.${signature}`;
    for (const [cursor, code] of [
      [forged, "cursor-invalid"],
      [flipped, "cursor-invalid"],
      [`${payload}.${signature.slice(1)}`, "cursor-invalid"],
      ["not-a-cursor", "cursor-invalid"],
    ] as const) {
      const { res, body } = await get(`/aggregate/Patient?_cursor=${encodeURIComponent(cursor)}`);
      expect(res.status, cursor).toBe(400);
      expect(body.issue![0]!.details.coding[0]!.code).toBe(code);
    }
    const added = await get(`${url.slice(edge.url.length - 1)}&sources=gone`);
    expect(added.res.status).toBe(400);
    expect(added.body.issue![0]!.details.coding[0]!.code).toBe("cursor-with-search");
    expect(upstreamRequests()).toBe(0);
  });

  it("another client's cursor, or one for another resource type: 400 cursor-foreign", async () => {
    const url = await firstCursor();
    const asOther = await get(url.slice(edge.url.length - 1), OTHER);
    expect(asOther.res.status).toBe(400);
    expect(asOther.body.issue![0]!.details.coding[0]!.code).toBe("cursor-foreign");
    const otherType = await get(url.slice(edge.url.length - 1).replace("/aggregate/Patient", "/aggregate/Observation"));
    expect(otherType.body.issue![0]!.details.coding[0]!.code).toBe("cursor-foreign");
    expect(upstreamRequests()).toBe(0);
  });

  it("a cursor naming a source the caller may not use here (an edge with the same secret but without it): 400 cursor-foreign", async () => {
    const url = await firstCursor();
    const eastOnly = await startEdge(
      { PROXY_API_KEYS: `app:${APP["X-Api-Key"]}`, FHIR_SOURCE_EAST: `fhir+http://${new URL(east.url).host}/fhir/R4?token=env:EAST_TOKEN` },
      { EAST_TOKEN, AGGREGATE_CURSOR_SECRET: CURSOR_SECRET },
    );
    try {
      const { res, body } = await get(`/aggregate/Patient?${new URL(url).search.slice(1)}`, APP, eastOnly);
      expect(res.status).toBe(400);
      expect(body.issue![0]!.details.coding[0]!.code).toBe("cursor-foreign");
      expect(upstreamRequests()).toBe(0);
    } finally {
      await eastOnly.close();
    }
  });
});

describe("POST /aggregate: a batch whose entries name their source", () => {
  it("runs the entries in parallel and answers a batch-response in the same order, bad entries with their own outcome", async () => {
    const batch = {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        { request: { method: "GET", url: "east/Patient?gender=male&_count=2" } },
        { request: { method: "GET", url: "/west/Patient/west-3" } },
        { request: { method: "GET", url: "nowhere/Patient" } },
        { request: { method: "POST", url: "east/Patient" }, resource: { resourceType: "Patient" } },
        { request: { method: "GET", url: "east/Patient/missing" } },
        { request: { method: "GET", url: "gone/Patient" } },
        { request: { method: "GET", url: "east/../admin" } },
      ],
    };
    const res = await edge.fetch("/aggregate", { method: "POST", headers: { ...APP, "Content-Type": "application/fhir+json" }, body: JSON.stringify(batch) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { type: string; entry: Entry[] };
    expect(body.type).toBe("batch-response");
    // A closed port reaches a Worker as a platform 5xx (500 under wrangler dev, 52x on Cloudflare).
    expect(body.entry.map((e) => e.response!.status)).toEqual(["200", "200", "404", "405", "404", expect.stringMatching(/^5\d\d$/), "400"]);
    const search = body.entry[0]!.resource as unknown as Searchset;
    expect(search.total).toBe(7);
    expect(search.link.every((l) => l.url.startsWith(`${edge.url}east/`))).toBe(true);
    expect(body.entry[1]!).toMatchObject({ fullUrl: `${edge.url}west/Patient/west-3`, resource: { resourceType: "Patient", id: "west-3" } });
    expect(body.entry[2]!.response!.outcome!.issue[0]!.details.coding[0]!.code).toBe("source-not-found");
    expect(body.entry[4]!.response!.outcome!.issue[0]!.code).toBe("processing");
    expect(east.requests.filter((r) => r.method === "POST")).toHaveLength(0);
  });

  it("a transaction or a non-Bundle: 400", async () => {
    const res = await edge.fetch("/aggregate", { method: "POST", headers: { ...APP, "Content-Type": "application/fhir+json" }, body: JSON.stringify({ resourceType: "Bundle", type: "transaction" }) });
    expect(res.status).toBe(400);
    expect(upstreamRequests()).toBe(0);
  });
});

describe("GET /metadata and /status", () => {
  it("/metadata is public and names every source, the aggregate and the webhook endpoints", async () => {
    const res = await edge.fetch("/metadata");
    expect(res.status).toBe(200);
    const text = await res.text();
    for (const url of [`${edge.url}east`, `${edge.url}west`, `${edge.url}gone`, `${edge.url}aggregate/{resourceType}`, `${edge.url}webhooks/{channel}`]) expect(text).toContain(`"${url}"`);
    expect(text).not.toContain(east.url);
    expect(text).not.toContain(EAST_TOKEN);
  });

  it("/status shows each source's reachability, probed at most once a minute per isolate", async () => {
    const status = async () =>
      (await (await edge.fetch("/status", { headers: OPS })).json()) as { sources: Array<{ name: string; reachability: { reachable: boolean; status?: number } }>; aggregate: { cursorKey: string } };
    const first = await status();
    expect(first.sources.find((s) => s.name === "east")!.reachability).toMatchObject({ reachable: true, status: 200 });
    expect(first.sources.find((s) => s.name === "gone")!.reachability).toMatchObject({ reachable: false });
    expect(first.aggregate.cursorKey).toBe("AGGREGATE_CURSOR_SECRET");
    const probes = east.requests.filter((r) => r.path.endsWith("/metadata")).length;
    expect(probes).toBeLessThanOrEqual(1);
    await status();
    expect(east.requests.filter((r) => r.path.endsWith("/metadata"))).toHaveLength(probes);
    expect((await edge.fetch("/status", { headers: APP })).status).toBe(403);
  });
});

describe("logs", () => {
  it("carry the aggregate's route shape and sources, never its search or cursor", async () => {
    edge.clearLogs();
    const { body } = await get("/aggregate/Patient?sources=east,west&birthdate=ge1901-02-03&_count=1");
    const cursor = new URL(next(body)!).searchParams.get("_cursor")!;
    await get(`/aggregate/Patient?_cursor=${cursor}`);
    const logs = edge.logs();
    expect(logs).toContain('\\"route\\":\\"aggregate/Patient\\"');
    expect(logs).toContain('\\"source\\":\\"east,west\\"');
    for (const secret of ["1901-02-03", cursor.slice(0, 20), EAST_TOKEN, APP["X-Api-Key"]]) expect(logs).not.toContain(secret);
  });
});
