/**
 * The auth broker (docs/contract.md sections 1a, 2, 3; docs/upstream-auth.md) against a real OAuth server
 * (oidc-provider) and a FHIR server that accepts only tokens it issued.
 */
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, type JWK } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startOAuthServer, type OAuthServer } from "../peers/oauth-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";

const KEY = "broker-test-key-42";
const ADMIN = "broker-admin-key-43";
const SECRET = "basic-secret-with:colon+plus";
const POST_SECRET = "post-secret-7";

let oauth: OAuthServer;
let shortOAuth: OAuthServer;
let fhir: FhirServer;
let discoverable: FhirServer;
let metadataOnly: FhirServer;
let edge: Edge;
let rsPublic: JWK;
let esPublic: JWK;

const get = (path: string, key = KEY) => edge.fetch(path, { headers: { "X-Api-Key": key } });

beforeAll(async () => {
  const rs = await generateKeyPair("RS384", { extractable: true });
  const es = await generateKeyPair("ES384", { extractable: true });
  // Registered as an EHR would after reading the edge's JWKS: with the edge's default kid (the thumbprint).
  const withKid = async (jwk: JWK) => ({ ...jwk, kid: await calculateJwkThumbprint(jwk, "sha256") });
  rsPublic = await withKid(await exportJWK(rs.publicKey));
  esPublic = await withKid(await exportJWK(es.publicKey));
  const rsPem = await exportPKCS8(rs.privateKey);
  const esJwk = JSON.stringify(await exportJWK(es.privateKey));

  oauth = await startOAuthServer({
    clients: [
      { clientId: "edge-basic", secret: SECRET, authMethod: "client_secret_basic" },
      { clientId: "edge-post", secret: POST_SECRET, authMethod: "client_secret_post" },
      { clientId: "edge-rs384", authMethod: "private_key_jwt", jwks: { keys: [rsPublic] } },
      { clientId: "edge-es384", authMethod: "private_key_jwt", jwks: { keys: [esPublic] } },
      { clientId: "edge-discover", secret: SECRET, authMethod: "client_secret_basic" },
      { clientId: "edge-meta", secret: SECRET, authMethod: "client_secret_basic" },
      { clientId: "edge-wrong", secret: "the-right-one", authMethod: "client_secret_basic" },
    ],
  });
  shortOAuth = await startOAuthServer({ clients: [{ clientId: "edge-short", secret: SECRET, authMethod: "client_secret_basic" }], accessTokenTtl: 3 });
  const accepts = async (h: string | undefined) =>
    !!h?.startsWith("Bearer ") && ((await oauth.verifyAccessToken(h.slice(7))) || (await shortOAuth.verifyAccessToken(h.slice(7))));
  fhir = await startFhirServer({ expectAuthorization: accepts });
  discoverable = await startFhirServer({ expectAuthorization: accepts, tokenUrl: oauth.tokenUrl });
  metadataOnly = await startFhirServer({ expectAuthorization: accepts, tokenUrl: oauth.tokenUrl, smartConfiguration: false });
  await fhir.seed(demoPatients(3));
  await discoverable.seed(demoPatients(1));
  await metadataOnly.seed(demoPatients(1));

  const up = (server: FhirServer) => `fhir+http://${new URL(server.url).host}/fhir/R4`;
  const t = `token_url=${encodeURIComponent(oauth.tokenUrl)}`;
  edge = await startEdge(
    {
      PROXY_API_KEYS: `tests:${KEY},ops:${ADMIN}`,
      PROXY_ADMIN_CLIENTS: "ops",
      FHIR_SOURCE_BASIC: `${up(fhir)}?client_id=edge-basic&client_secret=env:BASIC_SECRET&${t}&retry_backoff_factor=0.01`,
      FHIR_SOURCE_POST: `${up(fhir)}?client_id=edge-post&client_secret=env:POST_SECRET&token_auth=post&${t}`,
      FHIR_SOURCE_RS: `${up(fhir)}?client_id=edge-rs384&use_jwt_assertion=true&private_key=env:RS_KEY&${t}`,
      FHIR_SOURCE_ES: `${up(fhir)}?client_id=edge-es384&use_jwt_assertion=true&private_key=env:ES_KEY&alg=ES384&${t}`,
      FHIR_SOURCE_DISCOVER: `${up(discoverable)}?client_id=edge-discover&client_secret=env:BASIC_SECRET`,
      FHIR_SOURCE_META: `${up(metadataOnly)}?client_id=edge-meta&client_secret=env:BASIC_SECRET`,
      FHIR_SOURCE_WRONG: `${up(fhir)}?client_id=edge-wrong&client_secret=not-the-secret&${t}`,
      FHIR_SOURCE_SHORT: `${up(fhir)}?client_id=edge-short&client_secret=env:BASIC_SECRET&token_url=${encodeURIComponent(shortOAuth.tokenUrl)}`,
    },
    { BASIC_SECRET: SECRET, POST_SECRET, RS_KEY: rsPem, ES_KEY: esJwk, TOKEN_CACHE_KEY: "a-test-key-for-sealing-tokens-in-kv" },
  );
});

afterAll(async () => {
  await edge?.close();
  await Promise.all([fhir?.close(), discoverable?.close(), metadataOnly?.close(), oauth?.close(), shortOAuth?.close()]);
});

beforeEach(() => fhir.reset());

describe("OAuth2 client credentials", () => {
  it("client_secret_basic: 30 requests (sequential and concurrent) cost one token fetch", async () => {
    for (let i = 0; i < 10; i++) expect((await get("/basic/Patient/demo-patient-1")).status).toBe(200);
    const burst = await Promise.all(Array.from({ length: 20 }, () => get("/basic/Patient?_count=1")));
    expect(burst.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(oauth.tokenRequests("edge-basic")).toBe(1);
  });

  it("client_secret_post, as token_auth=post says", async () => {
    expect((await get("/post/Patient/demo-patient-1")).status).toBe(200);
    expect(oauth.tokensIssued("edge-post")).toBe(1);
  });

  it("never forwards the client's key, and the upstream sees the broker's token", async () => {
    await get("/basic/Patient/demo-patient-2");
    const seen = fhir.requests.at(-1)!;
    expect(seen.headers.authorization).toMatch(/^Bearer /);
    expect(await oauth.verifyAccessToken(seen.headers.authorization!.slice(7))).toBe(true);
    expect(JSON.stringify(seen.headers)).not.toContain(KEY);
  });

  it("a forced 401 drops the token, fetches a fresh one and sends the request exactly once more", async () => {
    await get("/basic/Patient/demo-patient-1");
    const before = oauth.tokenRequests("edge-basic");
    await oauth.revokeAll();
    fhir.reset();
    const res = await get("/basic/Patient/demo-patient-1");
    expect(res.status).toBe(200);
    expect(oauth.tokenRequests("edge-basic")).toBe(before + 1);
    expect(fhir.requests.map((r) => r.method)).toEqual(["GET", "GET"]);
  });

  it("a wrong secret: a clear 502 naming the source, no secret, and the failure is not retried hammering the endpoint", async () => {
    const res = await get("/wrong/Patient/demo-patient-1");
    expect(res.status).toBe(502);
    const text = await res.text();
    const body = JSON.parse(text) as { issue: Array<{ code: string; diagnostics: string; details: { coding: Array<{ code: string }> } }> };
    expect(body.issue[0]!.details.coding[0]!.code).toBe("token-endpoint-refused");
    expect(body.issue[0]!.diagnostics).toContain("wrong");
    expect(body.issue[0]!.diagnostics).toContain("invalid_client");
    expect(text).not.toContain("not-the-secret");
    const calls = oauth.tokenRequests("edge-wrong");
    expect((await get("/wrong/Patient/demo-patient-1")).status).toBe(502);
    expect(oauth.tokenRequests("edge-wrong")).toBe(calls);
    await new Promise((r) => setTimeout(r, 2200));
    expect((await get("/wrong/Patient/demo-patient-1")).status).toBe(502);
    expect(oauth.tokenRequests("edge-wrong")).toBe(calls + 1);
    expect(fhir.requests.filter((r) => r.headers.authorization === undefined)).toHaveLength(0);
  });

  it("a short-lived token (3 s) is renewed before it expires, with no failed request", async () => {
    const statuses: number[] = [];
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      statuses.push((await get("/short/Patient/demo-patient-1")).status);
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(shortOAuth.tokenRequests("edge-short")).toBeGreaterThanOrEqual(2);
    expect(shortOAuth.tokenRequests("edge-short")).toBeLessThanOrEqual(3);
  });

  it("discovers the token endpoint from .well-known/smart-configuration, then from metadata's oauth-uris", async () => {
    expect((await get("/discover/Patient/demo-patient-1")).status).toBe(200);
    expect(oauth.tokensIssued("edge-discover")).toBe(1);
    expect((await get("/meta/Patient/demo-patient-1")).status).toBe(200);
    expect(oauth.tokensIssued("edge-meta")).toBe(1);
  });
});

describe("SMART Backend Services JWT assertion", () => {
  it.each([
    ["rs", "edge-rs384", "RS384", () => rsPublic],
    ["es", "edge-es384", "ES384", () => esPublic],
  ] as const)("%s: oidc-provider accepts the assertion, whose claims follow the spec", async (source, clientId, alg, publicKey) => {
    const res = await get(`/${source}/Patient/demo-patient-1`);
    expect(res.status).toBe(200);
    expect(oauth.tokensIssued(clientId)).toBe(1);
    const { header, claims } = oauth.lastAssertion!;
    expect(header).toMatchObject({ alg, typ: "JWT", kid: await calculateJwkThumbprint(publicKey(), "sha256") });
    expect(claims).toMatchObject({ iss: clientId, sub: clientId, aud: oauth.tokenUrl });
    expect(typeof claims.jti).toBe("string");
    expect((claims.exp as number) - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(300);
  });

  it("a fresh jti for every assertion", async () => {
    await get("/rs/Patient/demo-patient-1");
    const first = oauth.lastAssertion!.claims.jti;
    await oauth.revokeAll();
    expect((await get("/rs/Patient/demo-patient-1")).status).toBe(200);
    expect(oauth.lastAssertion!.claims.jti).not.toBe(first);
  });

  it("GET /.well-known/jwks.json publishes each assertion key: kid, alg, use sig, no private part", async () => {
    const res = await edge.fetch("/.well-known/jwks.json");
    expect(res.status).toBe(200);
    const { keys } = (await res.json()) as { keys: Array<JWK & { d?: string }> };
    expect(keys).toHaveLength(2);
    for (const [pub, alg] of [
      [rsPublic, "RS384"],
      [esPublic, "ES384"],
    ] as const) {
      const kid = await calculateJwkThumbprint(pub, "sha256");
      expect(keys.find((k) => k.kid === kid)).toMatchObject({ alg, use: "sig", kty: pub.kty });
    }
    expect(keys.some((k) => "d" in k)).toBe(false);
  });
});

describe("/status", () => {
  it("shows each source's auth kind and token expiry, never a token or a secret", async () => {
    await get("/basic/Patient/demo-patient-1");
    const res = await get("/status", ADMIN);
    const text = await res.text();
    const status = JSON.parse(text) as { sources: Array<{ name: string; auth: string; tokenCache?: string; token?: { expiresAt: string; tokenFetches: number } }> };
    const basic = status.sources.find((s) => s.name === "basic")!;
    expect(basic.auth).toBe("client-credentials");
    expect(basic.tokenCache).toContain("KV");
    expect(Date.parse(basic.token!.expiresAt)).toBeGreaterThan(Date.now());
    expect(status.sources.find((s) => s.name === "rs")!.auth).toBe("jwt-assertion");
    // /status probes each source's metadata without credentials: the token is on the last authorized request.
    const token = fhir.requests.filter((r) => r.headers.authorization).at(-1)?.headers.authorization?.slice(7);
    expect(token).toBeTruthy();
    for (const secret of [SECRET, POST_SECRET, "BEGIN PRIVATE KEY", token!, KEY]) expect(text).not.toContain(secret);
  });
});
