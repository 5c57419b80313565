/**
 * The one client for a source (docs/upstream-client.md), against real peers:
 * the oidc-provider OAuth server, Medplum's FHIR router, and a bare
 * node:http server that breaks its answers on purpose.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startOAuthServer, type OAuthServer } from "../peers/oauth-server.ts";
import { startEdge, type Edge } from "./support/edge.ts";
import { until } from "./support/poll.ts";

const KEY = "upstream-client-key";
const ADMIN = "upstream-client-admin";
const SECRET = "upstream-client-oauth-secret";
let oauth: OAuthServer;
let fhir: FhirServer;
let breaking: http.Server;
let edge: Edge;

/** What the bare server does with the next request to each path. */
function breakingHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url?.endsWith("/before-first-byte")) {
    // Headers promise 1000 bytes; the connection closes before any.
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "1000" });
    res.flushHeaders();
    setTimeout(() => res.socket?.destroy(), 50);
    return;
  }
  if (req.url?.endsWith("/mid-stream")) {
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "100000" });
    res.write(Buffer.alloc(10_000, 97));
    setTimeout(() => res.socket?.destroy(), 200);
    return;
  }
  if (req.url?.endsWith("/long")) {
    // Larger than one read of the edge, in several writes: streamed, not handed on whole.
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "300000" });
    res.write(Buffer.alloc(100_000, 98));
    setTimeout(() => res.end(Buffer.alloc(200_000, 99)), 50);
    return;
  }
  res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": "5" });
  res.end("whole");
}

beforeAll(async () => {
  oauth = await startOAuthServer({ clients: [{ clientId: "edge-client", secret: SECRET, authMethod: "client_secret_basic" }] });
  fhir = await startFhirServer({
    expectAuthorization: async (h) => !!h?.startsWith("Bearer ") && (await oauth.verifyAccessToken(h.slice(7))),
    protectMetadata: true,
  });
  breaking = http.createServer(breakingHandler);
  await new Promise<void>((resolve) => breaking.listen(0, "127.0.0.1", resolve));
  const breakingPort = (breaking.address() as AddressInfo).port;
  edge = await startEdge(
    {
      PROXY_API_KEYS: `app:${KEY},ops:${ADMIN}`,
      PROXY_ADMIN_CLIENTS: "ops",
      PUBLIC_URL: "https://edge.example.org",
      FHIR_SOURCE_EHR: `fhir+http://${new URL(fhir.url).host}/fhir/R4?client_id=edge-client&client_secret=env:EHR_SECRET&token_url=${encodeURIComponent(oauth.tokenUrl)}&max_attempts=1`,
      FHIR_SOURCE_RAW: `fhir+http://127.0.0.1:${breakingPort}/fhir?max_attempts=1&timeout=2`,
      FHIR_CHANNELS: JSON.stringify({
        encounters: {
          source: "ehr",
          topic: "http://example.org/SubscriptionTopic/encounter-start",
          filterBy: [{ resourceType: "Encounter", filterParameter: "status", value: "in-progress" }],
          payload: "id-only",
          heartbeatPeriod: 20,
          timeout: 60,
          fhirVersion: "R4",
          secret: "env:CHANNEL_SECRET",
          targets: [{ url: "https://app.example/hook" }],
        },
      }),
    },
    { EHR_SECRET: SECRET, CHANNEL_SECRET: "upstream-client-channel-secret" },
  );
});

afterAll(async () => {
  await edge?.close();
  await new Promise((resolve) => (breaking ? breaking.close(resolve) : resolve(undefined)));
  await Promise.all([fhir?.close(), oauth?.close()]);
});

beforeEach(() => fhir.reset());

/** The stable code of an OperationOutcome answer. */
async function outcomeCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { resourceType: string; issue: Array<{ details?: { coding?: Array<{ code: string }> } }> };
  expect(body.resourceType).toBe("OperationOutcome");
  return body.issue[0]?.details?.coding?.[0]?.code;
}

describe("a 401 on a cached token drops it, fetches a new one and sends the request exactly once more", () => {
  it("GET /:source/metadata, after the OAuth server revoked the token", async () => {
    const first = await edge.fetch("/ehr/metadata", { headers: { Accept: "application/fhir+json" } });
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const tokens = oauth.tokenRequests("edge-client");
    await oauth.revokeAll();
    fhir.reset();
    // Another Accept, so the edge's one-minute metadata cache does not answer.
    const res = await edge.fetch("/ehr/metadata", { headers: { Accept: "application/json" } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { resourceType: string }).resourceType).toBe("CapabilityStatement");
    expect(oauth.tokenRequests("edge-client")).toBe(tokens + 1);
    expect(fhir.requests.map((r) => `${r.method} ${r.path.replace(/\?.*/, "")}`)).toEqual(["GET /fhir/R4/metadata", "GET /fhir/R4/metadata"]);
  });

  it("POST /admin/channels/<channel>/register, after the OAuth server revoked the token", async () => {
    const created = await edge.fetch("/admin/channels/encounters/register", { method: "POST", headers: { "X-Api-Key": ADMIN } });
    expect(created.status).toBe(201);
    await created.arrayBuffer();
    const tokens = oauth.tokenRequests("edge-client");
    await oauth.revokeAll();
    fhir.reset();
    const updated = await edge.fetch("/admin/channels/encounters/register", { method: "POST", headers: { "X-Api-Key": ADMIN } });
    expect(updated.status).toBe(200);
    await updated.arrayBuffer();
    expect(oauth.tokenRequests("edge-client")).toBe(tokens + 1);
    expect(fhir.requests.map((r) => r.method)).toEqual(["PUT", "PUT"]);
    expect(fhir.requests[0]!.headers.authorization).not.toBe(fhir.requests[1]!.headers.authorization);
  });
});

describe("an upstream answer that ends early or breaks reaches the client whole or as a 502 OperationOutcome, never truncated", () => {
  it("a forwarded header too large for the upstream (node:http answers 431 and closes): every answer is complete or a 502", async () => {
    // The fuzzer's case: around 32 KiB and above, node:http's 16 KiB limit answers 431 and closes the connection.
    for (const kib of [32, 64, 100, 100, 200]) {
      const res = await edge.fetch("/ehr/Patient", { headers: { "X-Api-Key": KEY, "X-Padding": "a".repeat(kib * 1024) } });
      expect([431, 502]).toContain(res.status);
      const text = await res.text(); // rejects on a truncated chunked answer
      if (res.status === 502) expect((JSON.parse(text) as { resourceType: string }).resourceType).toBe("OperationOutcome");
    }
  });

  it("a body that breaks before its first byte: 502 upstream-answer-broken", async () => {
    const res = await edge.fetch("/raw/before-first-byte", { headers: { "X-Api-Key": KEY } });
    expect(res.status).toBe(502);
    expect(await outcomeCode(res)).toBe("upstream-answer-broken");
  });

  it("a body that breaks after the edge began passing it on: the stream errors (no final chunk) and the log says why", async () => {
    edge.clearLogs();
    const res = await edge.fetch("/raw/mid-stream", { headers: { "X-Api-Key": KEY } });
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(await until(() => edge.logs().includes("upstream answer broke mid-stream"), { timeoutMs: 5_000 })).toBe(true);
  });

  it("a whole answer still streams through unchanged, its Content-Length kept for the client, small or streamed", async () => {
    const res = await edge.fetch("/raw/whole", { headers: { "X-Api-Key": KEY } });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Length")).toBe("5");
    expect(await res.text()).toBe("whole");
    const long = await edge.fetch("/raw/long", { headers: { "X-Api-Key": KEY } });
    expect(long.headers.get("Content-Length")).toBe("300000");
    const bytes = new Uint8Array(await long.arrayBuffer());
    expect(bytes.length).toBe(300_000);
    expect([bytes[0], bytes[99_999], bytes[100_000], bytes[299_999]]).toEqual([98, 98, 99, 99]);
  });
});
