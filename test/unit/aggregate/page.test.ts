import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import { positionFromUrl, readSearchPage, splitPosition } from "../../../src/aggregate/page.ts";

const source = readEdgeConfig({ FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4" }).sources.get("ehr")!;
const EDGE = "https://edge.example/ehr";
const PAGE_URL = "https://ehr.example/fhir/R4/Patient?_count=2";
const page = (next: string | undefined, entry: unknown[] = []) =>
  JSON.stringify({ resourceType: "Bundle", type: "searchset", total: 3, entry, link: next === undefined ? [] : [{ relation: "next", url: next }] });

describe("reading a source's page", () => {
  it("splits matches from includes and outcomes, and keeps the total", () => {
    const read = readSearchPage(
      page(undefined, [{ resource: { resourceType: "Patient", id: "1" } }, { resource: { resourceType: "Patient", id: "2" }, search: { mode: "match", score: 0.5 } }, { resource: { resourceType: "Organization", id: "o" }, search: { mode: "include" } }]),
      source,
      EDGE,
      PAGE_URL,
    );
    expect(read.ok && read.value.page.matches.map((e) => e.resource!.id)).toEqual(["1", "2"]);
    expect(read.ok && read.value.page.others.map((e) => e.resource!.id)).toEqual(["o"]);
    expect(read.ok && read.value.page.total).toBe(3);
  });

  it("turns the next link into a position under the source's base: rewritten, relative, or HAPI's _getpages", () => {
    const next = (link: string) => {
      const read = readSearchPage(page(link), source, EDGE, PAGE_URL);
      return read.ok ? (read.value.nextRefused ? "refused" : read.value.page.next) : read.error;
    };
    expect(next(`${EDGE}/Patient?_count=2&_offset=2`)).toBe("/Patient?_count=2&_offset=2");
    expect(next(`${EDGE}?_getpages=abc&_getpagesoffset=2`)).toBe("?_getpages=abc&_getpagesoffset=2");
    expect(next("Patient?page=2")).toBe("/Patient?page=2");
    expect(next("https://evil.example/fhir/R4/Patient?page=2")).toBe("refused");
    expect(next("//evil.example/x")).toBe("refused");
    expect(next("https://edge.example/ehr2/Patient")).toBe("refused");
    expect(next("/other/Patient")).toBe("refused");
  });

  it("refuses what is not a searchset Bundle", () => {
    expect(readSearchPage("<html>", source, EDGE, PAGE_URL)).toEqual({ ok: false, error: "is not JSON" });
    expect(readSearchPage('{"resourceType":"Patient"}', source, EDGE, PAGE_URL)).toEqual({ ok: false, error: "is not a searchset Bundle" });
  });

  it("positions split into path and query at a path boundary only", () => {
    expect(positionFromUrl("https://h/fhir/Patient", "https://h/fhir")).toBe("/Patient");
    expect(positionFromUrl("https://h/fhir2/Patient", "https://h/fhir")).toBeUndefined();
    expect(splitPosition("/Patient?x=1")).toEqual({ rest: "/Patient", search: "?x=1" });
    expect(splitPosition("?_getpages=1")).toEqual({ rest: "", search: "?_getpages=1" });
  });
});
