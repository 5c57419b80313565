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
    expect(rewriter.rewriteEverywhere(text)).toBe('"http://10.0.0.5:8080/fhir/R4b/x" "http://10.0.0.5:8080/fhir/R4-old" "https://edge.example/hapi"');
    const bundle = '{"resourceType":"Bundle","link":[{"url":"http://10.0.0.5:8080/fhir/R4b/x"},{"url":"http://10.0.0.5:8080/fhir/R4-old"},{"url":"http://10.0.0.5:8080/fhir/R4"}]}';
    expect(rewriter.rewriteText(bundle)).toBe('{"resourceType":"Bundle","link":[{"url":"http://10.0.0.5:8080/fhir/R4b/x"},{"url":"http://10.0.0.5:8080/fhir/R4-old"},{"url":"https://edge.example/hapi"}]}');
  });

  it("handles JSON's escaped slashes and XML attribute values", () => {
    expect(rewriter.rewriteText('{"resourceType":"Bundle","link":[{"url":"http:\\/\\/10.0.0.5:8080\\/fhir\\/R4\\/Patient"}]}')).toBe(
      '{"resourceType":"Bundle","link":[{"url":"https:\\/\\/edge.example\\/hapi\\/Patient"}]}',
    );
    expect(rewriter.rewriteText('<Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="http://10.0.0.5:8080/fhir/R4/Patient?_page=2&amp;x=1"/></link></Bundle>')).toBe(
      '<Bundle xmlns="http://hl7.org/fhir"><link><relation value="next"/><url value="https://edge.example/hapi/Patient?_page=2&amp;x=1"/></link></Bundle>',
    );
  });

  it("rewrites a batch entry's response.location, and the fields of a Bundle inside a Bundle", () => {
    const text = JSON.stringify({
      resourceType: "Bundle",
      type: "batch-response",
      entry: [
        { response: { status: "201", location: "http://10.0.0.5:8080/fhir/R4/Patient/1/_history/1" } },
        { resource: { resourceType: "Bundle", type: "searchset", link: [{ relation: "self", url: "http://10.0.0.5:8080/fhir/R4/Patient" }] }, response: { status: "200" } },
      ],
    });
    const out = JSON.parse(rewriter.rewriteText(text));
    expect(out.entry[0].response.location).toBe("https://edge.example/hapi/Patient/1/_history/1");
    expect(out.entry[1].resource.link[0].url).toBe("https://edge.example/hapi/Patient");
  });

  it("leaves the base alone everywhere else in a body: identifiers, references, text (found by rewrite-urls.property.test.ts)", () => {
    const text = JSON.stringify({
      resourceType: "Bundle",
      type: "searchset",
      entry: [
        {
          fullUrl: "http://10.0.0.5:8080/fhir/R4/Observation/1",
          resource: {
            resourceType: "Observation",
            identifier: [{ system: "http://10.0.0.5:8080/fhir/R4", value: "1" }],
            subject: { reference: "http://10.0.0.5:8080/fhir/R4/Patient/1" },
            note: [{ text: "moved from http://10.0.0.5:8080/fhir/R4/Observation/9" }],
            link: [{ url: "http://10.0.0.5:8080/fhir/R4/x" }],
          },
        },
      ],
    });
    const out = JSON.parse(rewriter.rewriteText(text));
    expect(out.entry[0].fullUrl).toBe("https://edge.example/hapi/Observation/1");
    expect(out.entry[0].resource).toEqual(JSON.parse(text).entry[0].resource);
    // The same resource outside a Bundle is not touched at all.
    const single = JSON.stringify(JSON.parse(text).entry[0].resource);
    expect(rewriter.rewriteText(single)).toBe(single);
    // rewrite_bodies=all asks for every occurrence.
    const all = createUrlRewriter("http://10.0.0.5:8080/fhir/R4", "https://edge.example/hapi", "/fhir/R4", "all");
    expect(all.rewriteText(single)).not.toContain("10.0.0.5");
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

  it("rewrites only the start of a Location, not a base inside its query (found by rewrite-urls.property.test.ts)", () => {
    expect(rewriter.rewriteHeader("http://10.0.0.5:8080/fhir/R4/Binary/1?from=http://10.0.0.5:8080/fhir/R4/x")).toBe("https://edge.example/hapi/Binary/1?from=http://10.0.0.5:8080/fhir/R4/x");
  });

  it("works for an upstream at the root of its host", () => {
    const root = createUrlRewriter("https://h.example", "https://edge.example/h", "");
    expect(root.rewriteText('{"resourceType":"Bundle","entry":[{"fullUrl":"https://h.example/Patient/1"},{"fullUrl":"https://h.example:444/x"}]}')).toBe(
      '{"resourceType":"Bundle","entry":[{"fullUrl":"https://edge.example/h/Patient/1"},{"fullUrl":"https://h.example:444/x"}]}',
    );
    // A path-absolute Location from a root server is under its base too (found by rewrite-urls.property.test.ts).
    expect(root.rewriteHeader("/Patient/1/_history/1")).toBe("https://edge.example/h/Patient/1/_history/1");
    expect(root.rewriteHeader("//elsewhere.example/x")).toBe("//elsewhere.example/x");
  });
});
