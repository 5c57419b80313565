import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import type { EdgeBindings } from "../../../src/context.ts";
import { EdgeError } from "../../../src/errors.ts";
import { defaultDeps, type ForwardDeps } from "../../../src/upstream/forward.ts";
import { sourceClient } from "../../../src/upstream/source-client.ts";

/**
 * sendTo(): a location the source handed out (a Bulk Data status URL or
 * file) by its absolute URL. The flow against a real Bulk Data server is
 * test/integration/bulk-export.test.ts; this shows what it cannot: that
 * nothing at all is sent to a host the source does not list, and what a
 * call without credentials leaves out.
 */
const config = readEdgeConfig({
  FHIR_SOURCE_EHR: "fhir://ehr.example/fhir?token=upstream-token&header.X-Api-Key=source-extra&bulk_file_hosts=storage.example&max_attempts=1",
});
const source = config.sources.get("ehr")!;

function recording() {
  const sent: Request[] = [];
  const deps: ForwardDeps = { ...defaultDeps, fetch: async (r) => (sent.push(r), new Response("{}", { status: 200 })) };
  return { sent, client: sourceClient(source, env as unknown as EdgeBindings, deps) };
}

const base = { method: "GET", requestId: "req-1", retryable: false, allowInsecureHttp: false } as const;

describe("sendTo calls only the source's origin and the hosts it lists", () => {
  it("a URL on another host is refused with 403 bulk-host-not-allowed, and nothing is sent", async () => {
    const { sent, client } = recording();
    for (const url of ["https://elsewhere.example/file.ndjson", "https://user:pw@ehr.example/fhir/x", "http://ehr.example/fhir/x", "not a url"]) {
      const refused = await client.sendTo({ ...base, url, credentials: true }).catch((e: unknown) => e);
      expect(refused, url).toBeInstanceOf(EdgeError);
      expect((refused as EdgeError).code, url).toBe("bulk-host-not-allowed");
      expect((refused as EdgeError).status, url).toBe(403);
    }
    expect(sent).toEqual([]);
  });

  it("the source's own origin gets its token and extra headers", async () => {
    const { sent, client } = recording();
    const { response } = await client.sendTo({ ...base, url: "https://ehr.example/bulkstatus/1", credentials: true });
    expect(response.status).toBe(200);
    expect(sent.map((r) => [r.url, r.headers.get("Authorization"), r.headers.get("X-Api-Key")])).toEqual([["https://ehr.example/bulkstatus/1", "Bearer upstream-token", "source-extra"]]);
  });

  it("without credentials, a listed storage host gets neither the token nor the source's extra headers", async () => {
    const { sent, client } = recording();
    await client.sendTo({ ...base, url: "https://storage.example/signed/file.ndjson?sig=abc", credentials: false });
    expect(sent.map((r) => [r.url, r.headers.get("Authorization"), r.headers.get("X-Api-Key")])).toEqual([["https://storage.example/signed/file.ndjson?sig=abc", null, null]]);
  });
});
