import { describe, expect, it } from "vitest";
import type { BundleEntry } from "../../../src/fhir/types.ts";
import { mergeRound, sumOfTotals, type SourcePage, type SourcePosition, type SourceRound } from "../../../src/aggregate/merge.ts";
import { parseSort } from "../../../src/aggregate/sort.ts";

const patient = (id: string, extra: Record<string, unknown> = {}): BundleEntry => ({ resource: { resourceType: "Patient", id, ...extra }, search: { mode: "match" } });
const include = (id: string): BundleEntry => ({ resource: { resourceType: "Organization", id }, search: { mode: "include" } });

/** A fake source: `ids` are all its matches, served `pageSize` at a time, positions `/Patient?p=<n>`. */
function source(name: string, ids: string[], pageSize: number, extra: (id: string) => Record<string, unknown> = () => ({})) {
  const pageAt = (at: string): SourcePage => {
    const n = Number(new URLSearchParams(at.split("?")[1]).get("p") ?? 0);
    const slice = ids.slice(n * pageSize, (n + 1) * pageSize);
    return { matches: slice.map((id) => patient(id, extra(id))), others: [], total: ids.length, next: (n + 1) * pageSize < ids.length ? `/Patient?p=${n + 1}` : null };
  };
  return { name, pageAt };
}

/** Pages the merge to the end the way the handler does, with `fail(round, source)` deciding who fails. */
function pageToEnd(sources: ReturnType<typeof source>[], count: number | null, sort = "", fail: (round: number, source: string) => boolean = () => false) {
  let positions: SourcePosition[] = sources.map((s) => ({ source: s.name, at: "/Patient?p=0", skip: 0 }));
  const pages: string[][] = [];
  const totals: Array<number | undefined> = [];
  for (let round = 0; positions.some((p) => p.at !== null) && round < 100; round++) {
    const rounds: SourceRound[] = positions.map((position) => {
      const s = sources.find((x) => x.name === position.source)!;
      return position.at === null || fail(round, s.name) ? { position } : { position, page: s.pageAt(position.at) };
    });
    const result = mergeRound(rounds, { count, sort: parseSort(sort || null) });
    pages.push(result.entries.map((e) => `${e.source}:${e.entry.resource!.id}`));
    totals.push(sumOfTotals(result.positions));
    positions = result.positions;
  }
  return { pages, totals, all: pages.flat() };
}

describe("merge: every match of every source exactly once", () => {
  it("unsorted: sources take turns, each page grouped by source, 25 + 7 matches over pages of 10", () => {
    const a = source("a", Array.from({ length: 25 }, (_, i) => `a${i}`), 10);
    const b = source("b", Array.from({ length: 7 }, (_, i) => `b${i}`), 10);
    const { pages, all, totals } = pageToEnd([a, b], 10);
    expect(pages[0]).toEqual(["a:a0", "a:a1", "a:a2", "a:a3", "a:a4", "b:b0", "b:b1", "b:b2", "b:b3", "b:b4"]);
    expect(pages.every((p) => p.length <= 10)).toBe(true);
    expect(all).toHaveLength(32);
    expect(new Set(all).size).toBe(32);
    expect(totals.every((t) => t === 32)).toBe(true);
  });

  it("with _count smaller and larger than the sources' pages", () => {
    for (const [count, pageSize] of [[3, 10], [10, 3], [7, 7], [1, 2]] as const) {
      const a = source("a", Array.from({ length: 11 }, (_, i) => `a${i}`), pageSize);
      const b = source("b", Array.from({ length: 9 }, (_, i) => `b${i}`), pageSize);
      const c = source("c", [], pageSize);
      const { pages, all } = pageToEnd([a, b, c], count);
      const expected = [...Array.from({ length: 11 }, (_, i) => `a:a${i}`), ...Array.from({ length: 9 }, (_, i) => `b:b${i}`)];
      expect(all.sort(), `count ${count} page ${pageSize}`).toEqual(expected.sort());
      expect(pages.every((p) => p.length <= count)).toBe(true);
    }
  });

  it("without _count, a merged page is every source's whole page", () => {
    const a = source("a", ["a0", "a1", "a2"], 2);
    const b = source("b", ["b0"], 2);
    const { pages } = pageToEnd([a, b], null);
    expect(pages).toEqual([["a:a0", "a:a1", "b:b0"], ["a:a2"]]);
  });

  it("a source that fails keeps its position and its matches come on a later page; total is absent until it answers", () => {
    const a = source("a", ["a0", "a1", "a2", "a3"], 2);
    const b = source("b", ["b0", "b1"], 2);
    const { all, totals } = pageToEnd([a, b], 2, "", (round, s) => s === "b" && round === 0);
    expect(all.sort()).toEqual(["a:a0", "a:a1", "a:a2", "a:a3", "b:b0", "b:b1"]);
    expect(totals[0]).toBeUndefined();
    expect(totals.at(-1)).toBe(6);
  });

  it("_sort by a date on the resource root: one ascending order across sources", () => {
    const date = (id: string) => ({ birthDate: `19${id.slice(1).padStart(2, "0")}-01-01` });
    const a = source("a", ["a10", "a20", "a30", "a40", "a50"], 2, date);
    const b = source("b", ["b15", "b25", "b35", "b45"], 3, date);
    const { all, pages } = pageToEnd([a, b], 3, "birthdate");
    expect(all).toEqual(["a:a10", "b:b15", "a:a20", "b:b25", "a:a30", "b:b35", "a:a40", "b:b45", "a:a50"]);
    expect(pages.every((p) => p.length <= 3)).toBe(true);
  });

  it("_sort descending, a number, ties in source order", () => {
    const value = (id: string) => ({ multipleBirthInteger: Number(id.slice(1)) });
    const a = source("a", ["a9", "a5", "a5", "a1"].map((x, i) => `${x}-${i}`), 2, (id) => value(id.split("-")[0]!));
    const b = source("b", ["b7", "b5", "b2"].map((x, i) => `${x}-${i}`), 2, (id) => value(id.split("-")[0]!));
    const { all } = pageToEnd([a, b], 4, "-multiplebirthinteger");
    expect(all).toEqual(["a:a9-0", "b:b7-0", "a:a5-1", "a:a5-2", "b:b5-1", "b:b2-2", "a:a1-3"]);
  });

  it("a _sort the edge cannot merge (an array element) falls back to taking turns", () => {
    const name = () => ({ name: [{ family: "X" }] });
    const a = source("a", ["a0", "a1"], 2, name);
    const b = source("b", ["b0", "b1"], 2, name);
    const result = mergeRound(
      [a, b].map((s) => ({ position: { source: s.name, at: "/Patient?p=0", skip: 0 }, page: s.pageAt("/Patient?p=0") })),
      { count: 2, sort: parseSort("name") },
    );
    expect(result.sortedBy).toEqual([]);
    expect(result.entries.map((e) => e.entry.resource!.id)).toEqual(["a0", "b0"]);
  });

  it("include entries go with the matches of their page; outcome entries from a source too", () => {
    const page: SourcePage = { matches: [patient("p1"), patient("p2")], others: [include("o1")], next: null };
    const first = mergeRound([{ position: { source: "a", at: "/Patient", skip: 0 }, page }], { count: 1, sort: [] });
    expect(first.entries.map((e) => e.entry.resource!.id)).toEqual(["p1", "o1"]);
    expect(first.positions[0]).toEqual({ source: "a", at: "/Patient", skip: 1 });
    const second = mergeRound([{ position: first.positions[0]!, page }], { count: 1, sort: [] });
    expect(second.entries.map((e) => e.entry.resource!.id)).toEqual(["p2", "o1"]);
    expect(second.positions[0]).toEqual({ source: "a", at: null, skip: 0 });
  });

  it("total is the sum only when every source gave one", () => {
    const withTotal: SourcePage = { matches: [], others: [], total: 4, next: null };
    const without: SourcePage = { matches: [], others: [], next: null };
    const pos = (source: string): SourcePosition => ({ source, at: "/Patient", skip: 0 });
    expect(sumOfTotals(mergeRound([{ position: pos("a"), page: withTotal }, { position: pos("b"), page: withTotal }], { count: 10, sort: [] }).positions)).toBe(8);
    expect(sumOfTotals(mergeRound([{ position: pos("a"), page: withTotal }, { position: pos("b"), page: without }], { count: 10, sort: [] }).positions)).toBeUndefined();
  });

  it("_count=0: no matches, totals only", () => {
    const a = source("a", ["a0", "a1"], 2);
    const result = mergeRound([{ position: { source: "a", at: "/Patient?p=0", skip: 0 }, page: a.pageAt("/Patient?p=0") }], { count: 0, sort: [] });
    expect(result.entries).toEqual([]);
    expect(sumOfTotals(result.positions)).toBe(2);
  });
});
