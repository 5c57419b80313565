import { describe, expect, it } from "vitest";
import { MAX_BATCH_ENTRIES, readBatch, readBatchEntry } from "../../../src/aggregate/batch.ts";

const ROOT = "https://edge.example/fhir";
const get = (url: unknown) => ({ request: { method: "GET", url } });

describe("POST /aggregate: a batch whose entries name their source", () => {
  it("takes batch Bundles only, of bounded size", () => {
    expect(readBatch({ resourceType: "Bundle", type: "batch", entry: [get("a/Patient")] })).toEqual({ ok: true, value: [get("a/Patient")] });
    expect(readBatch({ resourceType: "Bundle", type: "transaction" })).toMatchObject({ ok: false, error: { code: "batch-invalid" } });
    expect(readBatch({ resourceType: "Patient" })).toMatchObject({ ok: false, error: { code: "batch-invalid" } });
    expect(readBatch({ resourceType: "Bundle", type: "batch", entry: Array(MAX_BATCH_ENTRIES + 1).fill(get("a/Patient")) })).toMatchObject({ ok: false, error: { code: "batch-too-large" } });
  });

  it("reads the source from request.url: relative, with a slash, or absolute under the edge", () => {
    expect(readBatchEntry(get("medplum/Patient?name=x"), ROOT)).toEqual({ ok: true, value: { source: "medplum", rest: "/Patient", search: "?name=x" } });
    expect(readBatchEntry(get("/hapi/Patient/1"), ROOT)).toEqual({ ok: true, value: { source: "hapi", rest: "/Patient/1", search: "" } });
    expect(readBatchEntry(get(`${ROOT}/hapi/Observation?code=x`), ROOT)).toEqual({ ok: true, value: { source: "hapi", rest: "/Observation", search: "?code=x" } });
  });

  it("refuses, per entry, writes, foreign absolute URLs and entries without a request", () => {
    expect(readBatchEntry({ request: { method: "POST", url: "a/Patient" } }, ROOT)).toMatchObject({ ok: false, error: { status: 405 } });
    expect(readBatchEntry(get("https://evil.example/a/Patient"), ROOT)).toMatchObject({ ok: false, error: { status: 400 } });
    expect(readBatchEntry({}, ROOT)).toMatchObject({ ok: false, error: { status: 400 } });
    expect(readBatchEntry(get(""), ROOT)).toMatchObject({ ok: false, error: { status: 400 } });
  });
});
