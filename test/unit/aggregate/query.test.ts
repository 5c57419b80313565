import { describe, expect, it } from "vitest";
import { readAggregateQuery } from "../../../src/aggregate/query.ts";

describe("the aggregate's query", () => {
  it("takes sources out (comma lists and repeats) and keeps the rest byte for byte", () => {
    expect(readAggregateQuery("?sources=a,b&name=J%C3%B6rg&sources=c&sources=a&birthdate=ge1970&_count=5&_sort=-birthdate")).toEqual({
      ok: true,
      value: { kind: "search", search: { sources: ["a", "b", "c"], search: "?name=J%C3%B6rg&birthdate=ge1970&_count=5&_sort=-birthdate", count: 5, sort: "-birthdate" } },
    });
    expect(readAggregateQuery("")).toEqual({ ok: true, value: { kind: "search", search: { sources: [], search: "", count: null, sort: null } } });
  });

  it("a _cursor stands alone", () => {
    expect(readAggregateQuery("?_cursor=abc.def")).toEqual({ ok: true, value: { kind: "cursor", cursor: "abc.def" } });
    expect(readAggregateQuery("?_cursor=abc.def&_format=json")).toEqual({ ok: true, value: { kind: "cursor", cursor: "abc.def" } });
    expect(readAggregateQuery("?_cursor=abc.def&sources=evil")).toMatchObject({ ok: false, error: { reason: "cursor-with-search" } });
    expect(readAggregateQuery("?_cursor=abc.def&name=x")).toMatchObject({ ok: false, error: { reason: "cursor-with-search" } });
  });

  it("refuses a _count that is not a whole number, and XML", () => {
    expect(readAggregateQuery("?_count=-1")).toMatchObject({ ok: false, error: { reason: "invalid-count" } });
    expect(readAggregateQuery("?_count=ten")).toMatchObject({ ok: false, error: { reason: "invalid-count" } });
    expect(readAggregateQuery("?_format=xml")).toMatchObject({ ok: false, error: { reason: "format-not-supported" } });
  });
});
