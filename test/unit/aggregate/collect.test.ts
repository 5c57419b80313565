import { describe, expect, it } from "vitest";
import { collectPage, type FetchPages, type PageResult } from "../../../src/aggregate/collect.ts";
import type { SourcePosition } from "../../../src/aggregate/merge.ts";
import { parseSort } from "../../../src/aggregate/sort.ts";

/** Sources of numbered patients (`value` = the number), served `pageSize` at a time at `/Patient?p=<n>`. */
function sources(data: Record<string, number[]>, pageSize: number, failing: (source: string, at: string) => boolean = () => false) {
  const fetched: string[] = [];
  const fetchPages: FetchPages = async (positions) =>
    positions.map((p): PageResult => {
      fetched.push(`${p.source}${p.at}`);
      if (failing(p.source, p.at!)) return { ok: false, error: new Error("down"), attempts: 1 };
      const n = Number(new URLSearchParams(p.at!.split("?")[1]).get("p") ?? 0);
      const all = data[p.source]!;
      const slice = all.slice(n * pageSize, (n + 1) * pageSize);
      return {
        ok: true,
        attempts: 1,
        page: {
          matches: slice.map((v) => ({ resource: { resourceType: "Patient", id: `${p.source}${v}`, multipleBirthInteger: v } })),
          others: [],
          total: all.length,
          next: (n + 1) * pageSize < all.length ? `/Patient?p=${n + 1}` : null,
        },
      };
    });
  const start: SourcePosition[] = Object.keys(data).map((source) => ({ source, at: "/Patient?p=0", skip: 0 }));
  return { fetchPages, fetched, start };
}

const ids = (page: Awaited<ReturnType<typeof collectPage>>) => page.entries.map((e) => e.entry.resource!.id);

describe("collecting one merged page", () => {
  it("refills a source whose page ran out, so a page is full until the end", async () => {
    const s = sources({ a: [1, 2, 3, 4, 5, 6], b: [7] }, 2);
    const page = await collectPage(s.start, s.fetchPages, 4, []);
    expect(ids(page)).toEqual(["a1", "a2", "a3", "b7"]);
    expect(s.fetched).toEqual(["a/Patient?p=0", "b/Patient?p=0", "a/Patient?p=1"]);
    expect(page.positions).toEqual([
      { source: "a", at: "/Patient?p=1", skip: 1, total: 6 },
      { source: "b", at: null, skip: 0, total: 1 },
    ]);
    expect(page.total).toBe(7);
  });

  it("a sorted merge refills the source it waits for", async () => {
    const s = sources({ a: [1, 2, 9], b: [3, 4, 5, 6] }, 2);
    const page = await collectPage(s.start, s.fetchPages, 4, parseSort("multiplebirthinteger"));
    expect(ids(page)).toEqual(["a1", "a2", "b3", "b4"]);
  });

  it("a failed refill ends the page there; the source is asked again on the next page", async () => {
    const s = sources({ a: [1, 2, 3, 4], b: [5, 6, 7, 8] }, 2, (source, at) => source === "a" && at === "/Patient?p=1");
    const page = await collectPage(s.start, s.fetchPages, 4, parseSort("multiplebirthinteger"));
    expect(ids(page)).toEqual(["a1", "a2"]);
    expect(page.failures).toEqual([]);
    expect(page.positions[0]).toEqual({ source: "a", at: "/Patient?p=1", skip: 0, total: 4 });
  });

  it("reports sources that failed the first round, and whether any answered", async () => {
    const s = sources({ a: [1], b: [2] }, 2, (source) => source === "b");
    const page = await collectPage(s.start, s.fetchPages, 10, []);
    expect(page).toMatchObject({ asked: 2, answered: 1, failures: [{ source: "b" }] });
    expect(page.total).toBeUndefined();
    const none = await collectPage(s.start, sources({ a: [1], b: [2] }, 2, () => true).fetchPages, 10, []);
    expect(none).toMatchObject({ asked: 2, answered: 0 });
  });

  it("without _count: one round, each source's whole page", async () => {
    const s = sources({ a: [1, 2, 3], b: [4] }, 2);
    const page = await collectPage(s.start, s.fetchPages, null, []);
    expect(ids(page)).toEqual(["a1", "a2", "b4"]);
    expect(s.fetched).toHaveLength(2);
  });
});
