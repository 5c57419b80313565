import { describe, expect, it } from "vitest";
import { createEdge } from "../../../src/app.ts";
import type { ForwardDeps } from "../../../src/upstream/forward.ts";

/**
 * The `$bulk` route with stand-in upstreams, for what a real server cannot show: clocks (expiry),
 * and how much of a file the edge holds while streaming it. The flow against a real Bulk Data
 * server is test/integration/bulk-export.test.ts.
 */
const ENV = {
  PROXY_API_KEYS: "alice:alice-key-1,ops:ops-key-2",
  PROXY_ADMIN_CLIENTS: "ops",
  FHIR_SOURCE_EHR: "fhir://ehr.example/fhir?token=upstream-token&max_attempts=1&timeout=5",
};
const ALICE = { "X-Api-Key": "alice-key-1" };
const CHUNK = 64 * 1024;

/**
 * A generated NDJSON body of `bytes`, made only as it is read; `produced()` says how much has been handed out.
 * A byte stream (as every fetch body is) is read by the edge in whole megabytes; a plain one chunk by chunk.
 */
function generated(bytes: number, kind: "bytes" | "plain") {
  const chunk = new TextEncoder().encode(`${JSON.stringify({ resourceType: "Observation", id: "x".repeat(CHUNK - 40) })}\n`.slice(0, CHUNK));
  let produced = 0;
  const next = (): Uint8Array | undefined => {
    if (produced >= bytes) return undefined;
    const part = bytes - produced >= chunk.length ? chunk : chunk.subarray(0, bytes - produced);
    produced += part.length;
    return part;
  };
  const stream =
    kind === "bytes"
      ? new ReadableStream(
          {
            type: "bytes",
            pull(controller) {
              const part = next();
              // A byte stream takes over the buffer it is given: hand it a copy.
              if (part === undefined) controller.close();
              else controller.enqueue(part.slice());
            },
          },
          { highWaterMark: 0 },
        )
      : new ReadableStream<Uint8Array>(
          {
            pull(controller) {
              const part = next();
              if (part === undefined) controller.close();
              else controller.enqueue(part);
            },
          },
          { highWaterMark: 0 },
        );
  return { stream, produced: () => produced };
}

function upstream(fileBytes: number, calls: string[], kind: "bytes" | "plain" = "plain") {
  const file = generated(fileBytes, kind);
  const fetch: ForwardDeps["fetch"] = async (req) => {
    calls.push(`${req.method} ${req.url}`);
    const url = new URL(req.url);
    if (url.pathname.endsWith("/$export")) return new Response(null, { status: 202, headers: { "Content-Location": "https://ehr.example/bulkstatus/1" } });
    if (url.pathname === "/bulkstatus/1") {
      return Response.json({ transactionTime: "2026-12-01T00:00:00Z", request: req.url, requiresAccessToken: true, output: [{ type: "Observation", url: "https://ehr.example/bulkfiles/1/Observation.ndjson" }], error: [] });
    }
    return new Response(file.stream, { headers: { "Content-Type": "application/fhir+ndjson" } });
  };
  return { fetch, file };
}

async function toFile(app: ReturnType<typeof createEdge>, env: Record<string, unknown>): Promise<string> {
  const kick = await app.request("https://edge.example/ehr/$export", { headers: { ...ALICE, Prefer: "respond-async" } }, env);
  const status = await app.request(kick.headers.get("Content-Location")!, { headers: ALICE }, env);
  return ((await status.json()) as { output: Array<{ url: string }> }).output[0]!.url;
}

describe("a file streams through the edge without being held", () => {
  for (const [label, bytes, kind, mostAhead] of [
    ["1 MB, chunk by chunk", 1 << 20, "plain", CHUNK],
    ["1 GB, chunk by chunk", 1 << 30, "plain", CHUNK],
    ["1 GB, a byte stream read in whole megabytes", 1 << 30, "bytes", (1 << 20) + CHUNK],
  ] as const) {
    it(`${label}: the edge reads from upstream only as the client reads, never more than one read ahead`, async () => {
      const calls: string[] = [];
      const { fetch, file } = upstream(bytes, calls, kind);
      const app = createEdge({ deps: { fetch, sleep: async () => {} } });
      const res = await app.request(await toFile(app, ENV), { headers: ALICE }, ENV);
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      let received = 0;
      let ahead = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
        ahead = Math.max(ahead, file.produced() - received);
      }
      expect(received).toBe(bytes);
      // Whatever the size: at most one read (a chunk, or a megabyte and the chunk that filled it) is in the edge at a time.
      expect(ahead).toBeLessThanOrEqual(mostAhead);
      // A byte stream is read in whole megabytes: the edge did hold one (a chunk-by-chunk read never would).
      if (kind === "bytes") expect(ahead).toBeGreaterThanOrEqual(1 << 20);
    }, 60_000);
  }
});

describe("edge URLs: expiry and the signing key", () => {
  it("an expired status or file URL is 404 bulk-url-expired and nothing is fetched", async () => {
    const calls: string[] = [];
    let now = Date.UTC(2026, 11, 1);
    const { fetch } = upstream(10, calls);
    const app = createEdge({ deps: { fetch, sleep: async () => {}, now: () => now } });
    const kick = await app.request("https://edge.example/ehr/$export", { headers: { ...ALICE, Prefer: "respond-async" } }, ENV);
    const statusUrl = kick.headers.get("Content-Location")!;
    now += 24 * 3600_000;
    const before = calls.length;
    const res = await app.request(statusUrl, { headers: ALICE }, ENV);
    expect(res.status).toBe(404);
    const body = (await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> };
    expect(body.issue[0]!.details.coding[0]!.code).toBe("bulk-url-expired");
    expect(calls.length).toBe(before);
  });

  it("a file URL only takes GET and HEAD; a status URL GET and DELETE (405 otherwise, nothing fetched)", async () => {
    const calls: string[] = [];
    const { fetch } = upstream(10, calls);
    const app = createEdge({ deps: { fetch, sleep: async () => {} } });
    const fileUrl = await toFile(app, ENV);
    const before = calls.length;
    expect((await app.request(fileUrl, { method: "DELETE", headers: ALICE }, ENV)).status).toBe(405);
    expect((await app.request(fileUrl, { method: "POST", headers: ALICE }, ENV)).status).toBe(405);
    expect(calls.length).toBe(before);
    // HEAD: the file's headers, no body, one upstream HEAD.
    const head = await app.request(fileUrl, { method: "HEAD", headers: ALICE }, ENV);
    expect(head.status).toBe(200);
    expect(head.headers.get("Content-Type")).toBe("application/fhir+ndjson");
    expect(head.body).toBeNull();
    expect(calls.slice(before)).toEqual(["HEAD https://ehr.example/bulkfiles/1/Observation.ndjson"]);
  });

  it("/status says which key signs the URLs: BULK_URL_SECRET, or per isolate without it", async () => {
    const app = createEdge({ deps: { fetch: async () => new Response("{}", { status: 200 }), sleep: async () => {} } });
    const status = async (env: Record<string, unknown>) =>
      ((await (await app.request("https://edge.example/status", { headers: { "X-Api-Key": "ops-key-2" } }, env)).json()) as { bulk: { urlKey: string; urlTtlSeconds: number } }).bulk;
    expect(await status({ ...ENV, BULK_URL_SECRET: "s3cret-value" })).toEqual({ urlKey: "BULK_URL_SECRET", urlTtlSeconds: 86400 });
    expect((await status({ ...ENV })).urlKey).toMatch(/^per isolate: BULK_URL_SECRET is not set/);
  });
});
