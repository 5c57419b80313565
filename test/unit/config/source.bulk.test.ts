import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";

describe("source settings for Bulk Data: bulk_file_hosts and bulk_proxy_all_files", () => {
  it("connection string: hosts lower-cased, with or without a port; proxy-all off by default", () => {
    const config = readEdgeConfig({
      FHIR_SOURCE_EPIC: "fhir://ehr.example/fhir?bulk_file_hosts=Files.EHR.example,storage.example:8443&bulk_proxy_all_files=true",
      FHIR_SOURCE_PLAIN: "fhir://plain.example/fhir",
    });
    expect(config.sources.get("epic")!.bulk).toEqual({ fileHosts: ["files.ehr.example", "storage.example:8443"], proxyAllFiles: true });
    expect(config.sources.get("plain")!.bulk).toEqual({ fileHosts: [], proxyAllFiles: false });
  });

  it("FHIR_SOURCES: a list or a comma string, and a JSON boolean", () => {
    const config = readEdgeConfig({
      FHIR_SOURCES: { epic: { url: "https://ehr.example/fhir", bulk_file_hosts: ["files.ehr.example"], bulk_proxy_all_files: true } },
    });
    expect(config.sources.get("epic")!.bulk).toEqual({ fileHosts: ["files.ehr.example"], proxyAllFiles: true });
  });

  it("a host with a scheme or path, or a proxy flag that is not a boolean, is a configuration error naming the field", () => {
    const config = readEdgeConfig({
      FHIR_SOURCE_A: "fhir://a.example/fhir?bulk_file_hosts=https://files.example/x",
      FHIR_SOURCE_B: "fhir://b.example/fhir?bulk_proxy_all_files=yes",
    });
    expect(config.brokenSources.get("a")!.map((i) => i.field)).toEqual(["bulk_file_hosts"]);
    expect(config.brokenSources.get("b")!.map((i) => i.field)).toEqual(["bulk_proxy_all_files"]);
  });
});
