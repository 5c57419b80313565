import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { smartScopes } from "../../../src/auth/inbound/authorize.ts";
import { bulkExportPermissions } from "../../../src/auth/inbound/scopes.ts";
import { isExportKickoff, requestedExportTypes } from "../../../src/bulk/export-request.ts";
import type { EdgeHonoEnv } from "../../../src/context.ts";
import { renderError } from "../../../src/errors.ts";
import { routeShape } from "../../../src/fhir/route-shape.ts";

/** A kick-off checked by the proxy's scope check, for a JWT client holding `scopes`. */
async function kickoffStatus(scopes: string[], path: string, init: RequestInit = {}): Promise<number> {
  const app = new Hono<EdgeHonoEnv>();
  app.onError((e) => renderError(e, "test"));
  app.all("*", async (c) => {
    c.set("client", { name: "etl", scopes });
    const url = new URL(c.req.url);
    const segments = url.pathname.split("/").filter(Boolean).slice(1);
    let body: ArrayBuffer | undefined;
    await smartScopes(c, { method: c.req.method, route: routeShape(c.req.method, segments), segments, search: url.search, readBody: async () => (body ??= await c.req.raw.arrayBuffer()) });
    return c.text("allowed");
  });
  return (await app.request(`https://edge.example${path}`, init)).status;
}

const parameters = (types: string[]) =>
  JSON.stringify({ resourceType: "Parameters", parameter: types.map((t) => ({ name: "_type", valueString: t })) });

describe("a Bulk Data kick-off needs read scopes on every exported type", () => {
  it("recognises kick-offs at system, Patient and Group/<id> level only", () => {
    expect([["$export"], ["Patient", "$export"], ["Group", "g1", "$export"]].map(isExportKickoff)).toEqual([true, true, true]);
    expect([["Observation", "$export"], ["Patient", "1", "$export"], ["Group", "$export"], ["$export", "x"], []].map(isExportKickoff)).toEqual([false, false, false, false, false]);
  });

  it("reads _type from the query and from a POST's Parameters (comma lists and repeats); none means all types", () => {
    expect(requestedExportTypes("?_type=Patient,Observation&_type=Encounter")).toEqual(["Patient", "Observation", "Encounter"]);
    expect(requestedExportTypes("", parameters(["Patient, Condition", "Encounter"]))).toEqual(["Patient", "Condition", "Encounter"]);
    expect(requestedExportTypes("?_since=2020-01-01")).toBeUndefined();
    expect(requestedExportTypes("", "{not json")).toBeUndefined();
    expect(bulkExportPermissions(undefined)).toEqual([["*", "r"], ["*", "s"]]);
  });

  it("allows system/<Type>.rs, v1 .read and system/*.rs for the types asked", async () => {
    expect(await kickoffStatus(["system/Patient.rs", "system/Observation.read"], "/ehr/$export?_type=Patient,Observation")).toBe(200);
    expect(await kickoffStatus(["system/*.rs"], "/ehr/Group/g1/$export")).toBe(200);
    expect(await kickoffStatus(["system/Patient.rs"], "/ehr/Patient/$export", { method: "POST", body: parameters(["Patient"]) })).toBe(200);
  });

  it("refuses (403) a type the scopes lack, a missing search permission, and a kick-off without _type unless every type is granted", async () => {
    expect(await kickoffStatus(["system/Patient.rs"], "/ehr/$export?_type=Patient,Observation")).toBe(403);
    expect(await kickoffStatus(["system/Patient.r"], "/ehr/$export?_type=Patient")).toBe(403);
    expect(await kickoffStatus(["system/Patient.rs", "system/Observation.rs"], "/ehr/Patient/$export")).toBe(403);
    expect(await kickoffStatus(["system/Patient.rs"], "/ehr/$export", { method: "POST", body: parameters(["Patient", "Observation"]) })).toBe(403);
    expect(await kickoffStatus(["system/Patient.rs"], "/ehr/$export", { method: "POST", body: "{broken" })).toBe(403);
  });
});
