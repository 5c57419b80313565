import { describe, expect, it } from "vitest";
import { compareValues, entryComparator, mergeableKeys, parseSort, sortValue } from "../../../src/aggregate/sort.ts";

describe("_sort keys the edge can merge by", () => {
  it("parses R4 _sort: comma list, - for descending", () => {
    expect(parseSort("-birthdate, family,,")).toEqual([
      { param: "birthdate", descending: true },
      { param: "family", descending: false },
    ]);
    expect(parseSort(null)).toEqual([]);
  });

  it("reads primitives on the resource root: _id, _lastUpdated, date choices, names without hyphens", () => {
    const obs = { resourceType: "Observation", id: "o1", meta: { lastUpdated: "2024-01-02T00:00:00Z" }, effectiveDateTime: "2024-01-01", status: "final", code: { text: "x" } };
    expect(sortValue(obs, "_id")).toBe("o1");
    expect(sortValue(obs, "_lastUpdated")).toBe("2024-01-02T00:00:00Z");
    expect(sortValue(obs, "date")).toBe("2024-01-01");
    expect(sortValue(obs, "status")).toBe("final");
    expect(sortValue({ resourceType: "Patient", birthDate: "1970" }, "birthdate")).toBe("1970");
    expect(sortValue(obs, "code")).toBeNull();
    expect(sortValue(obs, "subject")).toBeUndefined();
  });

  it("compares dates by instant (time zones and partial dates), numbers numerically, strings case-insensitively", () => {
    expect(compareValues("2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00Z")).toBeLessThan(0);
    expect(compareValues("1970", "1970-06-01")).toBeLessThan(0);
    expect(compareValues(9, 10)).toBeLessThan(0);
    expect(compareValues("apple", "Banana")).toBeLessThan(0);
  });

  it("uses the leading keys whose values are primitives present on some entry", () => {
    const entries = [{ resource: { resourceType: "Patient", birthDate: "1970", name: [{ family: "X" }] } }];
    expect(mergeableKeys(parseSort("birthdate,name,gender"), entries)).toEqual([{ param: "birthdate", descending: false }]);
    expect(mergeableKeys(parseSort("family"), entries)).toEqual([]);
  });

  it("puts a missing value last in either direction", () => {
    const withDate = { resource: { resourceType: "Patient", birthDate: "1970" } };
    const without = { resource: { resourceType: "Patient" } };
    expect(entryComparator(parseSort("birthdate"))(without, withDate)).toBeGreaterThan(0);
    expect(entryComparator(parseSort("-birthdate"))(without, withDate)).toBeGreaterThan(0);
  });
});
