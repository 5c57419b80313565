/**
 * PROXY_AUTH=jwt (docs/contract.md#2-who-may-call-the-edge): client JWTs verified against a JWKS a
 * loopback server publishes; SMART system scopes enforced per type and
 * interaction before anything goes upstream, batch entries included.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Patient } from "@medplum/fhirtypes";
import { demoObservations, demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const ISSUER = "https://idp.example.org";
const AUDIENCE = "https://fhir-edge.example.org";

let jwksServer: http.Server;
let jwksFetches = 0;
let fhir: FhirServer;
let edge: Edge;
let signingKey: CryptoKey;
let foreignKey: CryptoKey;

async function token(claims: Record<string, unknown>, opts: { key?: CryptoKey; kid?: string; exp?: number; iss?: string; aud?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: opts.kid ?? "client-key-1" })
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE)
    .setSubject("analytics-app")
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 300)
    .sign(opts.key ?? signingKey);
}

const call = async (path: string, scope: string, init: RequestInit = {}) =>
  edge.fetch(path, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${await token({ scope })}` } });

beforeAll(async () => {
  const pair = await generateKeyPair("ES256", { extractable: true });
  signingKey = pair.privateKey;
  foreignKey = (await generateKeyPair("ES256")).privateKey;
  const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "client-key-1", alg: "ES256", use: "sig" };
  jwksServer = http.createServer((_, res) => {
    jwksFetches++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
  fhir = await startFhirServer();
  const [p] = await fhir.seed(demoPatients(2));
  await fhir.seed(demoObservations([p as Patient], 2));
  edge = await startEdge({
    PROXY_AUTH: "jwt",
    PROXY_JWT_JWKS_URL: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`,
    PROXY_JWT_ISSUER: ISSUER,
    PROXY_JWT_AUDIENCE: AUDIENCE,
    PROXY_ADMIN_CLIENTS: "ops-robot",
    FHIR_SOURCE_EHR: `fhir+http://${new URL(fhir.url).host}/fhir/R4`,
  });
});

afterAll(async () => {
  await edge?.close();
  await fhir?.close();
  await new Promise((r) => jwksServer?.close(r));
});

beforeEach(() => fhir.reset());

describe("verifying client JWTs", () => {
  it("accepts a valid token and caches the JWKS", async () => {
    expect((await call("/ehr/Patient/demo-patient-1", "system/Patient.rs")).status).toBe(200);
    expect((await call("/ehr/Patient/demo-patient-2", "system/Patient.rs")).status).toBe(200);
    expect(jwksFetches).toBe(1);
  });

  it.each<[string, (() => Promise<string>) | undefined, string]>([
    ["no token", undefined, "missing-credentials"],
    ["an expired token", () => token({ scope: "system/*.rs" }, { exp: Math.floor(Date.now() / 1000) - 120 }), "token-expired"],
    ["a foreign issuer", () => token({ scope: "system/*.rs" }, { iss: "https://evil.example" }), "invalid-token"],
    ["another audience", () => token({ scope: "system/*.rs" }, { aud: "https://other.example" }), "invalid-token"],
    ["a key not in the JWKS", () => token({ scope: "system/*.rs" }, { key: foreignKey }), "invalid-token"],
    ["garbage", async () => "not.a.jwt", "invalid-token"],
  ])("refuses %s: 401 with WWW-Authenticate, nothing upstream", async (_, make, code) => {
    const headers: Record<string, string> = make ? { Authorization: `Bearer ${await make()}` } : {};
    const res = await edge.fetch("/ehr/Patient/demo-patient-1", { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm="fhir-edge"/);
    const body = (await res.json()) as { issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> };
    expect(body.issue[0]).toMatchObject({ code: "login", details: { coding: [{ code }] } });
    expect(fhir.requests).toHaveLength(0);
  });

  it("unknown kids are refused, and fetch the JWKS again at most once per 30 s (no hammering the IdP)", async () => {
    expect((await call("/ehr/Patient/demo-patient-1", "system/Patient.rs")).status).toBe(200);
    const before = jwksFetches;
    for (let i = 0; i < 3; i++) {
      const res = await edge.fetch("/ehr/Patient/demo-patient-1", { headers: { Authorization: `Bearer ${await token({ scope: "system/*.rs" }, { key: foreignKey, kid: `rotated-${i}` })}` } });
      expect(res.status).toBe(401);
    }
    // The cached JWKS is seconds old here, so normally none; one if this run was slow enough to pass the 30 s.
    expect(jwksFetches - before).toBeLessThanOrEqual(1);
  });

  it("a JWKS that cannot be fetched is the edge's problem, not the client's: 502 jwks-unavailable, nothing upstream", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const orphan = await startEdge({
      PROXY_AUTH: "jwt",
      PROXY_JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      PROXY_JWT_ISSUER: ISSUER,
      PROXY_JWT_AUDIENCE: AUDIENCE,
      FHIR_SOURCE_EHR: `fhir+http://${new URL(fhir.url).host}/fhir/R4`,
    });
    try {
      const res = await orphan.fetch("/ehr/Patient/demo-patient-1", { headers: { Authorization: `Bearer ${await token({ scope: "system/*.rs" })}` } });
      expect(res.status).toBe(502);
      const body = (await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> };
      expect(body.issue[0]!.details.coding[0]!.code).toBe("jwks-unavailable");
      expect(fhir.requests).toHaveLength(0);
    } finally {
      await orphan.close();
    }
  });
});

describe("SMART scopes limit types and interactions (403 forbidden, nothing upstream)", () => {
  const cases: Array<[string, string, string, RequestInit | undefined, number]> = [
    ["v2 rs reads", "system/Patient.rs", "/ehr/Patient/demo-patient-1", undefined, 200],
    ["v2 rs searches", "system/Patient.rs", "/ehr/Patient?_count=1", undefined, 200],
    ["v2 rs cannot create", "system/Patient.rs", "/ehr/Patient", { method: "POST", body: '{"resourceType":"Patient"}', headers: { "Content-Type": "application/fhir+json" } }, 403],
    ["v2 r without s cannot search", "system/Patient.r", "/ehr/Patient", undefined, 403],
    ["another type is refused", "system/Patient.rs", "/ehr/Observation?subject=Patient/demo-patient-1", undefined, 403],
    ["a compartment search needs the searched type", "system/Patient.rs", "/ehr/Patient/demo-patient-1/Observation", undefined, 403],
    ["instance history needs r", "system/Patient.r", "/ehr/Patient/demo-patient-1/_history", undefined, 200],
    ["v1 read allows reading any type", "system/*.read", "/ehr/Observation?subject=Patient/demo-patient-1", undefined, 200],
    ["v1 read cannot delete", "system/*.read", "/ehr/Patient/demo-patient-2", { method: "DELETE" }, 403],
    ["v2 d deletes", "system/Patient.d", "/ehr/Patient/demo-patient-2", { method: "DELETE" }, 200],
    ["patient/ scopes grant nothing here", "patient/*.rs", "/ehr/Patient/demo-patient-1", undefined, 403],
    ["a granular scope with a query fails closed", "system/Patient.rs?identifier=x", "/ehr/Patient/demo-patient-1", undefined, 403],
  ];
  it.each(cases)("%s (%s)", async (_, scope, path, init, status) => {
    const res = await call(path, scope, init);
    expect(res.status).toBe(status);
    if (status === 403) {
      const body = (await res.json()) as { issue: Array<{ code: string }> };
      expect(body.issue[0]!.code).toBe("forbidden");
      expect(fhir.requests).toHaveLength(0);
    }
  });

  it("checks every entry of a batch or transaction", async () => {
    const batch = {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        { request: { method: "GET", url: "Patient/demo-patient-1" } },
        { request: { method: "POST", url: "Observation" }, resource: { resourceType: "Observation", status: "final", code: { text: "x" } } },
      ],
    };
    const init = { method: "POST", body: JSON.stringify(batch), headers: { "Content-Type": "application/fhir+json" } };
    const refused = await call("/ehr", "system/Patient.rs system/Observation.rs", init);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { issue: Array<{ diagnostics: string }> }).issue[0]!.diagnostics).toContain("batch entry 1");
    expect(fhir.requests).toHaveLength(0);
    const allowed = await call("/ehr", "system/Patient.rs system/Observation.c", init);
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as { type: string }).type).toBe("batch-response");
  });

  it("an aggregate needs s on its type, before any source is asked", async () => {
    for (const scope of ["system/Observation.rs", "system/Patient.r"]) {
      const refused = await call("/aggregate/Patient", scope);
      expect(refused.status, scope).toBe(403);
      expect(((await refused.json()) as { issue: Array<{ code: string }> }).issue[0]!.code).toBe("forbidden");
    }
    expect(fhir.requests).toHaveLength(0);
    const allowed = await call("/aggregate/Patient?_count=1", "system/Patient.s");
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toMatchObject({ resourceType: "Bundle", type: "searchset" });
  });

  it("POST /aggregate checks each entry: a forbidden entry gets its own 403, the others run", async () => {
    const batch = {
      resourceType: "Bundle",
      type: "batch",
      entry: [{ request: { method: "GET", url: "ehr/Patient/demo-patient-1" } }, { request: { method: "GET", url: "ehr/Observation?subject=Patient/demo-patient-1" } }],
    };
    const res = await call("/aggregate", "system/Patient.rs", { method: "POST", body: JSON.stringify(batch), headers: { "Content-Type": "application/fhir+json" } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { entry: Array<{ response: { status: string } }> };
    expect(body.entry.map((e) => e.response.status)).toEqual(["200", "403"]);
    expect(fhir.requests.map((r) => r.path)).toEqual(["/fhir/R4/Patient/demo-patient-1"]);
  });

  it("admin routes go by the token's sub", async () => {
    expect((await call("/status", "system/*.rs")).status).toBe(403);
  });
});
