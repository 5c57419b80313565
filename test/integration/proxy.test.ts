/**
 * The proxy contract (docs/contract.md#the-proxy-source) against real peers:
 * Medplum's FHIR router on loopback as the upstream, fhir-kit-client as the
 * client, the Worker in workerd in between.
 */
import { Client } from "fhir-kit-client";
import type { FhirResource } from "fhir-kit-client";
import type { Bundle, Patient } from "@medplum/fhirtypes";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoObservations, demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const UPSTREAM_TOKEN = "upstream-static-token-9f8e7d";
const CLIENT_KEY = "client-key-0123456789";

let upstream: FhirServer;
let pagesUpstream: FhirServer;
let edge: Edge;
let client: Client;

type Paged = FhirResource & Bundle & { link: Array<{ relation: string; url: string }> };

function responseOf(result: unknown): Response {
  const { response } = Client.httpFor(result as FhirResource);
  if (!response) throw new Error("no response attached");
  return response;
}

beforeAll(async () => {
  upstream = await startFhirServer({ expectAuthorization: `Bearer ${UPSTREAM_TOKEN}`, expectHeaders: { "x-tenant": "t1" } });
  pagesUpstream = await startFhirServer({ paging: "getpages", basePath: "/baseR4" });
  edge = await startEdge({
    PROXY_API_KEYS: `tests:${CLIENT_KEY}`,
    FHIR_SOURCE_MEDPLUM: `fhir+http://${new URL(upstream.url).host}/fhir/R4?token=env:MEDPLUM_TOKEN&header.X-Tenant=t1&retry_backoff_factor=0.05&max_backoff_wait=1&timeout=2`,
    FHIR_SOURCE_HAPI: `fhir+http://${new URL(pagesUpstream.url).host}/baseR4`,
    FHIR_SOURCE_SLOW: `fhir+http://${new URL(upstream.url).host}/fhir/R4?token=env:MEDPLUM_TOKEN&header.X-Tenant=t1&timeout=0.3&max_attempts=2&retry_backoff_factor=0.01`,
  }, { MEDPLUM_TOKEN: UPSTREAM_TOKEN });
  client = new Client({ baseUrl: `${edge.url}medplum`, customHeaders: { Authorization: `Bearer ${CLIENT_KEY}` } });
});

afterAll(async () => {
  await edge?.close();
  await upstream?.close();
  await pagesUpstream?.close();
});

beforeEach(() => {
  upstream.reset();
  upstream.clearData();
});

describe("CRUD through the edge with a real FHIR client", () => {
  it("creates (Location rewritten to the edge), reads, updates, deletes", async () => {
    const created = (await client.create({
      resourceType: "Patient",
      body: { resourceType: "Patient", name: [{ family: "Hopper", given: ["Grace"] }] },
    })) as FhirResource & Patient;
    const res = responseOf(created);
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(`${edge.url}medplum/Patient/${created.id}/_history/${created.meta?.versionId}`);
    expect(res.headers.get("etag")).toBe(`W/"${created.meta?.versionId}"`);

    const read = (await client.read({ resourceType: "Patient", id: created.id! })) as FhirResource & Patient;
    expect(read.name?.[0]?.family).toBe("Hopper");

    const updated = (await client.update({ resourceType: "Patient", id: created.id!, body: { ...read, gender: "female" } })) as FhirResource & Patient;
    expect(updated.gender).toBe("female");
    expect(responseOf(updated).headers.get("content-location")).toBe(`${edge.url}medplum/Patient/${created.id}/_history/${updated.meta?.versionId}`);

    await client.delete({ resourceType: "Patient", id: created.id! });
    await expect(client.read({ resourceType: "Patient", id: created.id! })).rejects.toMatchObject({ response: { status: 404 } });

    // The upstream saw its own credentials and header, never the client's key.
    for (const r of upstream.requests) {
      expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_TOKEN}`);
      expect(r.headers["x-tenant"]).toBe("t1");
      expect(JSON.stringify(r.headers)).not.toContain(CLIENT_KEY);
    }
  });

  it("searches, and pages 25 patients with _count=10 through the edge to the last page", async () => {
    await upstream.seed(demoPatients(25));
    let bundle = (await client.search({ resourceType: "Patient", searchParams: { _count: 10 } })) as Paged;
    const ids: string[] = [];
    const pages: number[] = [];
    for (;;) {
      pages.push(bundle.entry?.length ?? 0);
      for (const e of bundle.entry ?? []) {
        ids.push(e.resource!.id!);
        expect(e.fullUrl).toBe(`${edge.url}medplum/Patient/${e.resource!.id}`);
      }
      for (const link of bundle.link ?? []) expect(link.url.startsWith(`${edge.url}medplum/`), link.url).toBe(true);
      const next = (await client.nextPage({ bundle })) as Paged | undefined;
      if (!next) break;
      bundle = next;
    }
    expect(pages).toEqual([10, 10, 5]);
    expect(new Set(ids).size).toBe(25);
    expect(JSON.stringify(bundle)).not.toContain(upstream.url);
  });

  it("rewrites _history, batch/transaction responses and $everything pages", async () => {
    const [patient] = await upstream.seed(demoPatients(1));
    await upstream.seed(demoObservations([patient as Patient], 12));
    await client.update({ resourceType: "Patient", id: patient!.id!, body: { ...patient, gender: "other" } });

    const history = (await client.history({ resourceType: "Patient", id: patient!.id! })) as Paged;
    expect(history.type).toBe("history");
    expect(JSON.stringify(history)).not.toContain(upstream.url);
    expect(history.entry?.[0]?.fullUrl).toBe(`${edge.url}medplum/Patient/${patient!.id}`);

    const tx = (await client.transaction({
      body: {
        resourceType: "Bundle",
        type: "transaction",
        entry: [{ fullUrl: "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", resource: { resourceType: "Patient", name: [{ family: "Turing" }] }, request: { method: "POST", url: "Patient" } }],
      },
    })) as Paged;
    expect(tx.type).toBe("transaction-response");
    expect(tx.entry?.[0]?.response?.location?.startsWith(`${edge.url}medplum/Patient/`)).toBe(true);

    const everything = await edge.fetch(`/medplum/Patient/${patient!.id}/$everything?_count=5`, { headers: { "X-Api-Key": CLIENT_KEY } });
    const page = (await everything.json()) as Bundle;
    expect(page.total).toBe(13);
    expect(page.link?.find((l) => l.relation === "next")?.url).toBe(`${edge.url}medplum/Patient/${patient!.id}/$everything?_count=5&_offset=5`);
    expect(JSON.stringify(page)).not.toContain(upstream.url);
  });

  it("passes a single resource through byte for byte", async () => {
    const [patient] = await upstream.seed(demoPatients(1));
    const direct = await fetch(`${upstream.url}/Patient/${patient!.id}`, { headers: { Authorization: `Bearer ${UPSTREAM_TOKEN}`, "X-Tenant": "t1" } });
    const viaEdge = await edge.fetch(`/medplum/Patient/${patient!.id}`, { headers: { "X-Api-Key": CLIENT_KEY } });
    expect(await viaEdge.text()).toBe(await direct.text());
  });
});

describe("HAPI base-level paging and XML", () => {
  beforeEach(async () => {
    pagesUpstream.reset();
    pagesUpstream.clearData();
    await pagesUpstream.seed(demoPatients(12));
  });

  it("GET /:source?_getpages=... pages through the edge", async () => {
    const hapi = new Client({ baseUrl: `${edge.url}hapi`, customHeaders: { "X-Api-Key": CLIENT_KEY } });
    const first = (await hapi.search({ resourceType: "Patient", searchParams: { _count: 5 } })) as Paged;
    const next = first.link?.find((l) => l.relation === "next")?.url ?? "";
    expect(next.startsWith(`${edge.url}hapi?_getpages=`)).toBe(true);
    let seen = first.entry?.length ?? 0;
    let bundle: Paged | undefined = first;
    while ((bundle = (await hapi.nextPage({ bundle })) as Paged | undefined)) seen += bundle.entry?.length ?? 0;
    expect(seen).toBe(12);
  });

  it("XML (_format=xml) comes through with the same base rewriting", async () => {
    const res = await edge.fetch(`/hapi/Patient?_count=5&_format=xml`, { headers: { "X-Api-Key": CLIENT_KEY } });
    expect(res.headers.get("content-type")).toContain("application/fhir+xml");
    const xml = await res.text();
    expect(xml).toContain(`<url value="${edge.url}hapi?_getpages=`);
    expect(xml).not.toContain(pagesUpstream.url);
  });
});

describe("retries against a real upstream", () => {
  it("retries injected 503s (with Retry-After) and answers once the upstream recovers", async () => {
    const [patient] = await upstream.seed(demoPatients(1));
    upstream.failNext(2, { status: 503, retryAfter: "0" });
    const res = await edge.fetch(`/medplum/Patient/${patient!.id}`, { headers: { "X-Api-Key": CLIENT_KEY } });
    expect(res.status).toBe(200);
    expect(upstream.requests.filter((r) => r.path.includes(patient!.id!))).toHaveLength(3);
  });

  it("retries a dropped connection of an idempotent request", async () => {
    const [patient] = await upstream.seed(demoPatients(1));
    upstream.dropNext(1);
    const res = await edge.fetch(`/medplum/Patient/${patient!.id}`, { headers: { "X-Api-Key": CLIENT_KEY } });
    expect(res.status).toBe(200);
  });

  it("does not retry a plain POST", async () => {
    upstream.failNext(1, { status: 503 });
    const res = await edge.fetch(`/medplum/Patient`, {
      method: "POST",
      headers: { "X-Api-Key": CLIENT_KEY, "Content-Type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient" }),
    });
    expect(res.status).toBe(503);
    expect(upstream.requests).toHaveLength(1);
  });

  it("a slow upstream: 504 OperationOutcome after the per-attempt timeout", async () => {
    upstream.delayNext(2, 1000);
    const res = await edge.fetch(`/slow/Patient`, { headers: { "X-Api-Key": CLIENT_KEY } });
    expect(res.status).toBe(504);
    const body = (await res.json()) as { issue: Array<{ code: string }> };
    expect(body.issue[0]!.code).toBe("timeout");
    expect(upstream.requests).toHaveLength(2);
  });
});

describe("discovery describes the edge", () => {
  it("/:source/metadata: the upstream's statement with the edge's security, no upstream OAuth URLs", async () => {
    const res = await edge.fetch(`/medplum/metadata`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(upstream.origin);
    const statement = JSON.parse(text) as { resourceType: string; rest: Array<{ security: { description: string; extension?: unknown } }> };
    expect(statement.resourceType).toBe("CapabilityStatement");
    expect(statement.rest[0]!.security.description).toContain("API key");
    expect(statement.rest[0]!.security.extension).toBeUndefined();
  });

  it("/:source/.well-known/smart-configuration never points at the upstream's token endpoint", async () => {
    const res = await edge.fetch(`/medplum/.well-known/smart-configuration`);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toContain(upstream.origin);
  });
});

describe("logs", () => {
  it("never carry a query string, a body, a token or a key", async () => {
    edge.clearLogs();
    await upstream.seed(demoPatients(1));
    await edge.fetch(`/medplum/Patient?family=Lovelace&birthdate=1941-02-02`, { headers: { "X-Api-Key": CLIENT_KEY } });
    await edge.fetch(`/medplum/Patient`, {
      method: "POST",
      headers: { "X-Api-Key": CLIENT_KEY, "Content-Type": "application/fhir+json" },
      body: JSON.stringify({ resourceType: "Patient", name: [{ family: "Secretname" }] }),
    });
    const logs = edge.logs();
    expect(logs).toContain('\\"route\\":\\"Patient\\"');
    for (const secret of ["Lovelace", "1941-02-02", "Secretname", UPSTREAM_TOKEN, CLIENT_KEY]) expect(logs).not.toContain(secret);
  });
});

describe("metadata is public but cached", () => {
  it("a second /:source/metadata within a minute does not reach the upstream", async () => {
    upstream.reset();
    await edge.fetch(`/medplum/metadata?_summary=true`);
    await edge.fetch(`/medplum/metadata?_summary=true`);
    expect(upstream.requests.filter((r) => r.path.includes("/metadata"))).toHaveLength(1);
  });
});

describe("XML CapabilityStatement", () => {
  it("/:source/metadata?_format=xml: the edge's security, no upstream OAuth URL", async () => {
    const res = await edge.fetch(`/medplum/metadata?_format=xml`);
    expect(res.headers.get("content-type")).toContain("xml");
    const xml = await res.text();
    expect(xml).toContain("<security><cors value=\"true\"/><description value=\"fhir-edge: send an API key");
    expect(xml).not.toContain("fake-auth");
    expect(xml).not.toContain(upstream.origin);
  });
});
