/**
 * Proves the test peer in test/peers/fhir-server.ts is a working FHIR server on its own, with
 * fhir-kit-client pointed straight at it (no proxy): the proxy's integration tests rely on it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Client } from "fhir-kit-client";
import type { FhirResource } from "fhir-kit-client";
import type { Bundle, Observation, Patient } from "@medplum/fhirtypes";
import { demoObservations, demoPatients, startFhirServer } from "./fhir-server.ts";
import type { FhirServer } from "./fhir-server.ts";

/** fhir-kit-client throws `{ response: { status, data }, config: { headers } }` on non-2xx. */
interface KitError {
  response: { status: number; data: { resourceType?: string } };
  config: { headers: Headers };
}

async function failure(p: Promise<unknown> | undefined): Promise<KitError> {
  try {
    await p;
  } catch (err) {
    return err as KitError;
  }
  throw new Error("expected the request to fail");
}

function responseOf(result: FhirResource): Response {
  const { response } = Client.httpFor(result);
  if (!response) throw new Error("no response attached");
  return response;
}

type Paged = FhirResource & { link: Array<{ relation: string; url: string }> };

describe("FHIR test peer (Medplum FhirRouter over MemoryRepository)", () => {
  let server: FhirServer;
  let client: Client;

  beforeAll(async () => {
    server = await startFhirServer();
    client = new Client({ baseUrl: server.url });
  });
  afterAll(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    server.clearData();
  });

  it("listens on loopback with the default base path", () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/fhir/R4`);
  });

  it("creates, reads, updates, patches and deletes, with absolute Location and validators", async () => {
    const created = (await client.create({
      resourceType: "Patient",
      body: { resourceType: "Patient", name: [{ family: "Hopper", given: ["Grace"] }], birthDate: "1906-12-09" },
    })) as FhirResource & Patient;
    const id = created.id as string;
    const version1 = created.meta?.versionId as string;
    const createRes = responseOf(created);
    expect(createRes.status).toBe(201);
    expect(createRes.headers.get("location")).toBe(`${server.url}/Patient/${id}/_history/${version1}`);
    expect(createRes.headers.get("etag")).toBe(`W/"${version1}"`);
    expect(createRes.headers.get("content-type")).toBe("application/fhir+json; charset=utf-8");

    const read = (await client.read({ resourceType: "Patient", id })) as FhirResource & Patient;
    expect(read.name?.[0]?.family).toBe("Hopper");
    expect(responseOf(read).headers.get("last-modified")).toBe(new Date(read.meta?.lastUpdated as string).toUTCString());

    const updated = (await client.update({
      resourceType: "Patient",
      id,
      body: { ...read, gender: "female" },
    })) as FhirResource & Patient;
    expect(updated.gender).toBe("female");
    expect(updated.meta?.versionId).not.toBe(version1);

    const patched = (await client.patch({
      resourceType: "Patient",
      id,
      jsonPatch: [{ op: "add", path: "/active", value: true }],
    })) as FhirResource & Patient;
    expect(patched.active).toBe(true);

    // Read twice: MemoryRepository.readHistory alone would flip the order on every call.
    for (let i = 0; i < 2; i++) {
      const history = (await client.history({ resourceType: "Patient", id })) as FhirResource & Bundle;
      expect(history.type).toBe("history");
      expect(history.entry?.map((e) => e.resource?.meta?.versionId)).toEqual([
        patched.meta?.versionId,
        updated.meta?.versionId,
        version1,
      ]);
      expect(history.entry?.[0]?.fullUrl).toBe(`${server.url}/Patient/${id}`);
    }
    const v1 = (await client.vread({ resourceType: "Patient", id, version: version1 })) as FhirResource & Patient;
    expect(v1.gender).toBeUndefined();

    await client.delete({ resourceType: "Patient", id });
    const gone = await failure(client.read({ resourceType: "Patient", id }));
    expect(gone.response.status).toBe(404);
    expect(gone.response.data.resourceType).toBe("OperationOutcome");
  });

  it("answers 304 to a read whose If-None-Match matches", async () => {
    const [p] = await server.seed(demoPatients(1));
    const res = await fetch(`${server.url}/Patient/${p?.id}`, { headers: { "if-none-match": `W/"${p?.meta?.versionId}"` } });
    expect(res.status).toBe(304);
  });

  it("searches by parameter, by POST _search, and with _include", async () => {
    const patients = demoPatients(5);
    await server.seed([...patients, ...demoObservations(patients)]);
    const target = patients[2] as Patient;
    const family = target.name?.[0]?.family as string;

    const byFamily = (await client.search({ resourceType: "Patient", searchParams: { family } })) as FhirResource & Bundle;
    expect(byFamily.entry?.map((e) => e.resource?.id)).toContain(target.id);
    expect(byFamily.entry?.every((e) => e.fullUrl === `${server.url}/Patient/${e.resource?.id}`)).toBe(true);

    const byPost = (await client.search({
      resourceType: "Patient",
      searchParams: { birthdate: target.birthDate as string },
      options: { postSearch: true },
    })) as FhirResource & Bundle;
    expect(byPost.entry?.map((e) => e.resource?.id)).toEqual([target.id]);
    expect(server.requests.at(-1)).toMatchObject({ method: "POST", path: "/fhir/R4/Patient/_search" });

    const withSubject = (await client.search({
      resourceType: "Observation",
      searchParams: { subject: `Patient/${target.id}`, _include: "Observation:subject" },
    })) as FhirResource & Bundle;
    expect(withSubject.total).toBe(2);
    expect(withSubject.entry?.map((e) => e.search?.mode)).toEqual(["match", "match", "include"]);
  });

  it("pages 25 patients with _count=10 through absolute next links to the end", async () => {
    await server.seed(demoPatients(25));
    const sizes: number[] = [];
    const ids = new Set<string>();
    let page: Paged | undefined = (await client.search({ resourceType: "Patient", searchParams: { _count: 10 } })) as Paged;
    while (page) {
      const bundle = page as unknown as Bundle;
      expect(bundle.total).toBe(25);
      sizes.push(bundle.entry?.length ?? 0);
      for (const e of bundle.entry ?? []) ids.add(e.resource?.id as string);
      for (const l of page.link) expect(l.url.startsWith(`${server.url}/Patient?`)).toBe(true);
      page = (await client.nextPage({ bundle: page })) as Paged | undefined;
    }
    expect(sizes).toEqual([10, 10, 5]);
    expect(ids.size).toBe(25);
  });

  it("pages without _count at 20 per page", async () => {
    await server.seed(demoPatients(25));
    const first = (await client.search({ resourceType: "Patient" })) as FhirResource & Bundle;
    expect(first.entry?.length).toBe(20);
    expect(first.link?.find((l) => l.relation === "next")?.url).toBe(`${server.url}/Patient?_count=20&_offset=20`);
  });

  it("serves a CapabilityStatement with SMART oauth-uris at /metadata", async () => {
    const cs = (await client.capabilityStatement()) as FhirResource & { fhirVersion: string };
    expect(cs.resourceType).toBe("CapabilityStatement");
    expect(cs.fhirVersion).toBe("4.0.1");
    const auth = await client.smartAuthMetadata();
    expect(auth.tokenUrl?.href).toBe(`${server.origin}/fake-auth/token`);
    expect(auth.authorizeUrl?.href).toBe(`${server.origin}/fake-auth/authorize`);
  });

  it("runs a transaction, resolving urn:uuid references and answering absolute locations", async () => {
    const patientUrn = "urn:uuid:6f1c6b4e-8f3a-4c1e-9a53-0f3b1c2d4e5f";
    const result = (await client.transaction({
      body: {
        resourceType: "Bundle",
        type: "transaction",
        entry: [
          { fullUrl: patientUrn, request: { method: "POST", url: "Patient" }, resource: { resourceType: "Patient" } },
          {
            request: { method: "POST", url: "Observation" },
            resource: { resourceType: "Observation", status: "final", code: { text: "x" }, subject: { reference: patientUrn } },
          },
        ],
      },
    })) as FhirResource & Bundle;
    expect(result.type).toBe("transaction-response");
    const [patientEntry, obsEntry] = result.entry ?? [];
    expect(patientEntry?.response?.status).toBe("201");
    expect(patientEntry?.response?.location?.startsWith(`${server.url}/Patient/`)).toBe(true);
    expect((obsEntry?.resource as Observation).subject?.reference).toBe(`Patient/${patientEntry?.resource?.id}`);
  });

  it("creates conditionally with If-None-Exist", async () => {
    const body = { resourceType: "Patient", identifier: [{ system: "urn:test", value: "42" }] };
    const options = { headers: { "If-None-Exist": "identifier=urn:test|42" } };
    const first = await client.create({ resourceType: "Patient", body, options });
    const second = await client.create({ resourceType: "Patient", body, options });
    expect(responseOf(first).status).toBe(201);
    expect(responseOf(second).status).toBe(200);
    expect(second.id).toBe(first.id);
  });

  it("renders a searchset as minimal XML with absolute links for _format=xml", async () => {
    await server.seed(demoPatients(3));
    const res = await fetch(`${server.url}/Patient?_count=2&_format=xml`);
    expect(res.headers.get("content-type")).toBe("application/fhir+xml; charset=utf-8");
    const xml = await res.text();
    expect(xml).toContain('<Bundle xmlns="http://hl7.org/fhir">');
    expect(xml).toContain(`<link><relation value="next"/><url value="${server.url}/Patient?_count=2&amp;_offset=2"/></link>`);
    expect(xml).toContain(`<fullUrl value="${server.url}/Patient/demo-patient-1"/>`);
  });

  it("answers injected 503s with Retry-After, without reaching the router, then recovers", async () => {
    const [p] = await server.seed(demoPatients(1));
    server.failNext(2, { retryAfter: "5" });
    for (let i = 0; i < 2; i++) {
      const err = await failure(client.read({ resourceType: "Patient", id: p?.id as string }));
      expect(err.response.status).toBe(503);
      expect(err.config.headers.get("retry-after")).toBe("5");
    }
    const ok = await client.read({ resourceType: "Patient", id: p?.id as string });
    expect(ok.id).toBe(p?.id);
    expect(server.requests.map((r) => r.method)).toEqual(["GET", "GET", "GET"]);
    expect(server.requests[0]?.headers.accept).toBe("application/fhir+json");
  });

  it("drops connections and delays answers on request", async () => {
    server.dropNext(1);
    await expect(fetch(`${server.url}/metadata`)).rejects.toThrow();
    server.delayNext(1, 200);
    const started = Date.now();
    expect((await fetch(`${server.url}/metadata`)).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});

describe("FHIR test peer with expectAuthorization and HAPI-style paging", () => {
  let server: FhirServer;

  beforeAll(async () => {
    server = await startFhirServer({ expectAuthorization: "Bearer good-token", paging: "getpages", basePath: "/hapi/fhir" });
    await server.seed(demoPatients(25));
  });
  afterAll(async () => {
    await server.close();
  });

  it("rejects a missing or wrong token with 401, accepts the right one, keeps /metadata public", async () => {
    const anonymous = new Client({ baseUrl: server.url });
    const missing = await failure(anonymous.search({ resourceType: "Patient" }));
    expect(missing.response.status).toBe(401);
    expect(missing.response.data.resourceType).toBe("OperationOutcome");
    expect(missing.config.headers.get("www-authenticate")).toMatch(/^Bearer/);

    const wrong = await failure(new Client({ baseUrl: server.url, bearerToken: "bad" }).search({ resourceType: "Patient" }));
    expect(wrong.response.status).toBe(401);

    const authorized = new Client({ baseUrl: server.url, bearerToken: "good-token" });
    expect(((await authorized.search({ resourceType: "Patient" })) as FhirResource & Bundle).total).toBe(25);
    expect((await anonymous.capabilityStatement()).resourceType).toBe("CapabilityStatement");
  });

  it("pages through _getpages links at the base", async () => {
    const client = new Client({ baseUrl: server.url, bearerToken: "good-token" });
    const sizes: number[] = [];
    let page: Paged | undefined = (await client.search({ resourceType: "Patient", searchParams: { _count: 10 } })) as Paged;
    const next = page.link.find((l) => l.relation === "next")?.url ?? "";
    expect(next).toMatch(new RegExp(`^${server.url}\\?_getpages=[0-9a-f-]+&_getpagesoffset=10&_count=10$`));
    while (page) {
      sizes.push((page as unknown as Bundle).entry?.length ?? 0);
      page = (await client.nextPage({ bundle: page })) as Paged | undefined;
    }
    expect(sizes).toEqual([10, 10, 5]);
  });
});
