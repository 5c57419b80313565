import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import { resolveSourcePath } from "../../../src/upstream/source-path.ts";

const source = readEdgeConfig({ PROXY_AUTH: "none", FHIR_SOURCE_EHR: "fhir://ehr.example:8443/fhir/R4" }).sources.get("ehr")!;

describe("path safety: nothing leaves the source's base", () => {
  it("joins path and query byte for byte", () => {
    const t = resolveSourcePath(source, "/Patient/123/_history/2", "?_elements=id,name&x=%2F%20a+b");
    expect(t).toEqual({
      ok: true,
      value: { url: "https://ehr.example:8443/fhir/R4/Patient/123/_history/2?_elements=id,name&x=%2F%20a+b", segments: ["Patient", "123", "_history", "2"] },
    });
  });

  it("accepts the bare base and a trailing slash", () => {
    expect(resolveSourcePath(source, "", "?_getpages=abc&_getpagesoffset=10")).toMatchObject({ ok: true, value: { url: "https://ehr.example:8443/fhir/R4?_getpages=abc&_getpagesoffset=10", segments: [] } });
    expect(resolveSourcePath(source, "/", "")).toMatchObject({ ok: true, value: { url: "https://ehr.example:8443/fhir/R4/", segments: [] } });
    expect(resolveSourcePath(source, "/Patient/", "")).toMatchObject({ ok: true, value: { segments: ["Patient"] } });
  });

  it.each([
    ["/../admin", "dot-segment"],
    ["/Patient/../../x", "dot-segment"],
    ["/%2e%2e/x", "dot-segment"],
    ["/%2E%2e/x", "dot-segment"],
    ["/.%2e/x", "dot-segment"],
    ["/Patient/.", "dot-segment"],
    ["//evil.example/x", "empty-segment"],
    ["/http://evil.example/x", "empty-segment"],
    ["/Patient//1", "empty-segment"],
    ["/https:%2F%2Fevil.example", "encoded-separator"],
    ["/..%2fadmin", "encoded-separator"],
    ["/%5c%5cevil.example", "encoded-separator"],
    ["/a\\b", "backslash"],
    ["/Patient/%00", "control-character"],
    ["/Patient/%E0%A4%A", "bad-encoding"],
    // Found by the properties in target.property.test.ts: each leaves the base at some upstream.
    ["/Patient/..;/..;/admin", "dot-segment"],
    ["/Patient/%2e%2e;x/admin", "dot-segment"],
    ["/Patient/..%3bjsessionid=1/admin", "dot-segment"],
    ["/Patient/%252e%252e/admin", "bad-encoding"],
    ["/Patient/%25c0%25ae%25c0%25ae/admin", "bad-encoding"],
    ["/Patient/\uff0e\uff0e/admin", "dot-segment"],
    ["/Patient/%EF%BC%8E%EF%BC%8E/admin", "dot-segment"],
    ["/Patient/\u2025/admin", "dot-segment"],
    ["/Patient/a\uff0fb", "encoded-separator"],
    ["/Patient/1 ", "control-character"],
    ["/Patient#/1", "fragment"],
  ])("refuses %s (%s)", (rest, reason) => {
    expect(resolveSourcePath(source, rest, "")).toEqual({ ok: false, error: reason });
  });

  it.each(["/@evil.example/Patient", "/Patient/1@evil.example", "/:@evil.example"])("keeps %s on the configured host", (rest) => {
    const t = resolveSourcePath(source, rest, "?next=https://evil.example/");
    expect(t.ok).toBe(true);
    if (t.ok) {
      const url = new URL(t.value.url);
      expect(url.origin).toBe("https://ehr.example:8443");
      expect(url.pathname.startsWith("/fhir/R4/")).toBe(true);
    }
  });
});
