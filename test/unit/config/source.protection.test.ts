/** The protection parameters of a source (docs/protection.md), in both declaration forms. */
import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";

describe("circuit and retry budget parameters of a source", () => {
  it("default to 5 failures in a row within 60 s, 5 s open, a 20% budget with 10 retries per 10 s", () => {
    const source = readEdgeConfig({ FHIR_SOURCE_EHR: "fhir://ehr.example/r4?timeout=12&max_backoff_wait=7" }).sources.get("ehr")!;
    expect(source.protection).toEqual({
      circuitFailureThreshold: 5,
      circuitFailureWindowMs: 60_000,
      circuitOpenMs: 5_000,
      retryBudgetPercent: 20,
      retryBudgetMinRetries: 10,
      probeLeaseMs: 12_000,
      maxHoldMs: 7_000,
    });
  });

  it("are read from a connection string and from FHIR_SOURCES", () => {
    const config = readEdgeConfig({
      FHIR_SOURCE_A: "fhir://a.example/r4?circuit_failure_threshold=0&circuit_failure_window=10&circuit_open_seconds=2.5&retry_budget_percent=50&retry_budget_min_retries=1",
      FHIR_SOURCES: { b: { url: "https://b.example/r4", circuit_failure_threshold: 3, retry_budget_percent: 0 } },
    });
    expect(config.sources.get("a")!.protection).toMatchObject({ circuitFailureThreshold: 0, circuitFailureWindowMs: 10_000, circuitOpenMs: 2_500, retryBudgetPercent: 50, retryBudgetMinRetries: 1 });
    expect(config.sources.get("b")!.protection).toMatchObject({ circuitFailureThreshold: 3, retryBudgetPercent: 0 });
  });

  it("name the source and the field when out of range", () => {
    const config = readEdgeConfig({ FHIR_SOURCE_A: "fhir://a.example/r4?circuit_failure_threshold=-1&circuit_open_seconds=0&retry_budget_percent=150&retry_budget_min_retries=1.5" });
    expect(config.brokenSources.get("a")!.map((i) => i.field)).toEqual(["circuit_failure_threshold", "circuit_open_seconds", "retry_budget_percent", "retry_budget_min_retries"]);
  });
});
