import { describe, expect, it } from "vitest";
import { createUrlRewriter } from "../../../src/upstream/rewrite-urls.ts";

const rewriter = createUrlRewriter("http://10.0.0.5:8080/fhir/R4", "https://edge.example/hapi", "/fhir/R4");

describe("rewriting upstream URLs to the edge", () => {
  it("rewrites Bundle link[].url and entry[].fullUrl", () => {
    const bundle = {
      resourceType: "Bundle",
      type: "searchset",
      link: [
        { relation: "self", url: "http://10.0.0.5:8080/fhir/R4/Patient?_count=10" },
        { relation: "next", url: "http://10.0.0.5:8080/fhir/R4?_getpages=abc&_getpagesoffset=10" },
      ],
      entry: [{ fullUrl: "http://10.0.0.5:8080/fhir/R4/Patient/1", resource: { resourceType: "Patient", id: "1" } }],
    };
    const out = JSON.parse(rewriter.rewriteText(JSON.stringify(bundle)));
    expect(out.link.map((l: { url: string }) => l.url)).toEqual([
      "https://edge.example/hapi/Patient?_count=10",
      "https://edge.example/hapi?_getpages=abc&_getpagesoffset=10",
    ]);
    expect(out.entry[0].fullUrl).toBe("https://edge.example/hapi/Patient/1");
  });

  it("only at a URL boundary: a longer path or port is not the base", () => {
    const text = '"http://10.0.0.5:8080/fhir/R4b/x" "http://10.0.0.5:8080/fhir/R4-old" "http://10.0.0.5:8080/fhir/R4"';
    expect(rewriter.rewriteText(text)).toBe('"http://10.0.0.5:8080/fhir/R4b/x" "http://10.0.0.5:8080/fhir/R4-old" "https://edge.example/hapi"');
  });

  it("handles JSON's escaped slashes and XML attribute values", () => {
    expect(rewriter.rewriteText('{"url":"http:\\/\\/10.0.0.5:8080\\/fhir\\/R4\\/Patient"}')).toBe('{"url":"https:\\/\\/edge.example\\/hapi\\/Patient"}');
    expect(rewriter.rewriteText('<url value="http://10.0.0.5:8080/fhir/R4/Patient?_page=2"/>')).toBe('<url value="https://edge.example/hapi/Patient?_page=2"/>');
  });

  it("returns the very same string when there is nothing to rewrite", () => {
    const text = '{"resourceType":"Patient","id":"1"}';
    expect(rewriter.rewriteText(text)).toBe(text);
  });

  it("rewrites Location and Content-Location: absolute, and path-absolute under the base", () => {
    expect(rewriter.rewriteHeader("http://10.0.0.5:8080/fhir/R4/Patient/1/_history/1")).toBe("https://edge.example/hapi/Patient/1/_history/1");
    expect(rewriter.rewriteHeader("/fhir/R4/Patient/1")).toBe("https://edge.example/hapi/Patient/1");
    expect(rewriter.rewriteHeader("Patient/1/_history/1")).toBe("Patient/1/_history/1");
    expect(rewriter.rewriteHeader("https://elsewhere.example/x")).toBe("https://elsewhere.example/x");
  });

  it("works for an upstream at the root of its host", () => {
    const root = createUrlRewriter("https://h.example", "https://edge.example/h", "");
    expect(root.rewriteText('"https://h.example/Patient/1" "https://h.example:444/x"')).toBe('"https://edge.example/h/Patient/1" "https://h.example:444/x"');
  });
});
