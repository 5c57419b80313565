import { describe, expect, it } from "vitest";
import { routeShape } from "../../../src/fhir/route-shape.ts";

describe("route shape: what the log says and whether the body is rewritten", () => {
  it.each([
    ["GET", [], "/", "search", false],
    ["POST", [], "/", "batch", false],
    ["GET", ["Patient"], "Patient", "search", false],
    ["POST", ["Patient", "_search"], "Patient/_search", "search", false],
    ["GET", ["Patient", "123"], "Patient/{id}", "read", true],
    ["PUT", ["Patient", "123"], "Patient/{id}", "update", true],
    ["PATCH", ["Patient", "123"], "Patient/{id}", "patch", true],
    ["DELETE", ["Patient", "123"], "Patient/{id}", "delete", true],
    ["POST", ["Patient"], "Patient", "create", true],
    ["GET", ["Patient", "123", "_history", "4"], "Patient/{id}/_history/{vid}", "vread", true],
    ["GET", ["Patient", "123", "_history"], "Patient/{id}/_history", "history", false],
    ["GET", ["Patient", "_history"], "Patient/_history", "history", false],
    ["GET", ["_history"], "_history", "history", false],
    ["GET", ["Patient", "123", "$everything"], "Patient/{id}/$everything", "operation", false],
    ["POST", ["$export"], "$export", "operation", false],
    ["GET", ["Patient", "123", "Observation"], "Patient/{id}/Observation", "search", false],
    ["GET", ["metadata"], "metadata", "capabilities", false],
    ["GET", ["bulkstatus", "j0b-1d"], "{id}/{id}", "other", false],
  ] as const)("%s %j is %s (%s)", (method, segments, shape, interaction, single) => {
    const r = routeShape(method, segments);
    expect(r.shape).toBe(shape);
    expect(r.interaction).toBe(interaction);
    expect(r.singleResource).toBe(single);
  });

  it("never carries an id or a value", () => {
    expect(routeShape("GET", ["Patient", "jane-doe-1970"]).shape).not.toContain("jane");
  });
});
