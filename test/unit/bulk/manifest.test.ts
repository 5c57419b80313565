import { describe, expect, it } from "vitest";
import { rewriteManifest, type ManifestRewrite } from "../../../src/bulk/manifest.ts";
import { mayFetch } from "../../../src/upstream/source-hosts.ts";

const source = { origin: "https://ehr.example", bulk: { fileHosts: ["files.ehr.example"], proxyAllFiles: false } };
const how = (proxyAllFiles = false): ManifestRewrite => ({
  proxyAllFiles,
  mayFetch: (url) => mayFetch(source, url, false),
  wrap: async (url, kind, credentials) => `https://edge.example/ehr/$bulk/${kind}:${credentials ? "token" : "none"}:${url}`,
  rewriteRequest: (url) => url.replace("https://ehr.example/fhir", "https://edge.example/ehr"),
});

const manifest = (requiresAccessToken: boolean, host = "https://ehr.example") => ({
  transactionTime: "2026-12-01T00:00:00Z",
  request: "https://ehr.example/fhir/$export?_type=Patient",
  requiresAccessToken,
  output: [{ type: "Patient", url: `${host}/bulkfiles/1/Patient.ndjson`, count: 3 }],
  error: [{ type: "OperationOutcome", url: `${host}/bulkfiles/1/errors.ndjson` }],
  deleted: [{ type: "Bundle", url: `${host}/bulkfiles/1/deleted.ndjson` }],
  extension: { "https://example.org/x": 1 },
});

describe("the completed manifest, rewritten for the client", () => {
  it("requiresAccessToken true: request, output, error and deleted become edge URLs fetched with the source's token; the rest is kept", async () => {
    const out = await rewriteManifest(manifest(true), how());
    expect(out.ok && out.value).toEqual({
      transactionTime: "2026-12-01T00:00:00Z",
      request: "https://edge.example/ehr/$export?_type=Patient",
      requiresAccessToken: true,
      output: [{ type: "Patient", url: "https://edge.example/ehr/$bulk/file:token:https://ehr.example/bulkfiles/1/Patient.ndjson", count: 3 }],
      error: [{ type: "OperationOutcome", url: "https://edge.example/ehr/$bulk/file:token:https://ehr.example/bulkfiles/1/errors.ndjson" }],
      deleted: [{ type: "Bundle", url: "https://edge.example/ehr/$bulk/file:token:https://ehr.example/bulkfiles/1/deleted.ndjson" }],
      extension: { "https://example.org/x": 1 },
    });
  });

  it("requiresAccessToken false (pre-signed storage URLs): files left as they are, only request rewritten", async () => {
    const input = manifest(false, "https://storage.example");
    const out = await rewriteManifest(input, how());
    expect(out.ok && out.value).toEqual({ ...input, request: "https://edge.example/ehr/$export?_type=Patient" });
  });

  it("with bulk_proxy_all_files, token-free files go through the edge without the source's token", async () => {
    const out = await rewriteManifest(manifest(false, "https://files.ehr.example"), how(true));
    expect(out.ok && out.value.requiresAccessToken).toBe(true);
    expect(out.ok && (out.value.output as Array<{ url: string }>)[0]!.url).toBe("https://edge.example/ehr/$bulk/file:none:https://files.ehr.example/bulkfiles/1/Patient.ndjson");
  });

  it("a file the edge must fetch on a host the source does not list refuses the manifest, naming it", async () => {
    const input = manifest(true);
    input.output.push({ type: "Patient", url: "https://elsewhere.example/steal.ndjson", count: 1 });
    expect(await rewriteManifest(input, how())).toEqual({ ok: false, error: { reason: "host-not-allowed", url: "https://elsewhere.example/steal.ndjson" } });
  });

  it("a further manifest page (link[].url) becomes an edge URL", async () => {
    const out = await rewriteManifest({ ...manifest(true), link: [{ relation: "next", url: "https://ehr.example/bulkstatus/1?page=2" }] }, how());
    expect(out.ok && out.value.link).toEqual([{ relation: "next", url: "https://edge.example/ehr/$bulk/manifest:token:https://ehr.example/bulkstatus/1?page=2" }]);
  });

  it("anything that is not a manifest is reported as such", async () => {
    for (const input of [null, [], "text", { resourceType: "OperationOutcome" }]) {
      expect(await rewriteManifest(input, how())).toEqual({ ok: false, error: { reason: "not-a-manifest" } });
    }
  });
});

describe("the hosts the edge fetches Bulk Data locations from", () => {
  it("the source's own origin and the hosts it lists, nothing else", () => {
    const allowed = ["https://ehr.example/bulkstatus/1", "https://files.ehr.example/x", "https://FILES.ehr.example/x"];
    const refused = [
      "https://files.ehr.example:8443/x",
      "http://ehr.example/x",
      "https://ehr.example:444/x",
      "https://user:pw@ehr.example/x",
      "https://ehr.example.evil/x",
      "https://evil.example/x?https://ehr.example/",
      "ftp://ehr.example/x",
      "not a url",
    ];
    for (const url of allowed) expect(mayFetch(source, url, false), url).toBe(true);
    for (const url of refused) expect(mayFetch(source, url, false), url).toBe(false);
    expect(mayFetch({ origin: "http://127.0.0.1:8080", bulk: { fileHosts: ["127.0.0.1:9090"], proxyAllFiles: false } }, "http://127.0.0.1:9090/s", true)).toBe(true);
  });
});
