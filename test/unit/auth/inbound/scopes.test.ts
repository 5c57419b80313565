import { describe, expect, it } from "vitest";
import { allows, parseScopes, requiredPermissions } from "../../../../src/auth/inbound/scopes.ts";

describe("SMART scopes", () => {
  it("parses v2 permissions and v1 read/write/*", () => {
    const grants = parseScopes("system/Patient.rs system/Observation.cud system/*.read system/Encounter.write system/Practitioner.*");
    expect(grants.map((g) => [g.resourceType, [...g.permissions].join("")])).toEqual([
      ["Patient", "rs"],
      ["Observation", "cud"],
      ["*", "rs"],
      ["Encounter", "cud"],
      ["Practitioner", "cruds"],
    ]);
  });

  it("ignores patient/, user/, granular and malformed scopes (fail closed)", () => {
    expect(parseScopes("patient/*.rs user/Patient.cruds system/Observation.rs?category=lab system/Patient.sr system/Patient. openid launch")).toEqual([]);
  });

  it("a wildcard type allows every type", () => {
    const grants = parseScopes(["system/*.cruds"]);
    expect(allows(grants, "Observation", "d")).toBe(true);
    expect(allows(parseScopes("system/Patient.r"), "Observation", "r")).toBe(false);
  });

  it("maps interactions to permissions as SMART v2 does", () => {
    expect(requiredPermissions("read", "Patient", true)).toEqual([["Patient", "r"]]);
    expect(requiredPermissions("vread", "Patient", true)).toEqual([["Patient", "r"]]);
    expect(requiredPermissions("create", "Patient", false)).toEqual([["Patient", "c"]]);
    expect(requiredPermissions("patch", "Patient", true)).toEqual([["Patient", "u"]]);
    expect(requiredPermissions("delete", "Patient", true)).toEqual([["Patient", "d"]]);
    expect(requiredPermissions("search", "Patient", false)).toEqual([["Patient", "s"]]);
    expect(requiredPermissions("history", "Patient", true)).toEqual([["Patient", "r"]]);
    expect(requiredPermissions("history", "Patient", false)).toEqual([["Patient", "s"]]);
    expect(requiredPermissions("history", undefined, false)).toEqual([["*", "s"]]);
    expect(requiredPermissions("operation", undefined, false)).toEqual([
      ["*", "r"],
      ["*", "s"],
    ]);
    expect(requiredPermissions("other", undefined, false)).toHaveLength(5);
  });
});
