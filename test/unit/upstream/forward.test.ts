import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY } from "../../../src/config/source.ts";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import { createProtection } from "../../../src/protection/source-guard.ts";
import { forward, type ForwardDeps, type UpstreamCall } from "../../../src/upstream/forward.ts";

/** A call to a source that answers 503 every time, counting credential lookups. */
function call(signal: AbortSignal, counts: { lookups: number }): UpstreamCall {
  return {
    sourceName: "ehr",
    method: "GET",
    url: "https://ehr.example/fhir/Patient",
    headers: async () => {
      counts.lookups++;
      return new Headers();
    },
    body: null,
    retryable: true,
    retry: { ...DEFAULT_RETRY, maxAttempts: 5 },
    timeoutMs: 5_000,
    signal,
  };
}

describe("a caller's AbortSignal ends the retries (an aggregate past its timeout, a client that disconnected)", () => {
  it("a signal that fires during a backoff wait: no further attempt and no further credential lookup", async () => {
    const controller = new AbortController();
    const counts = { lookups: 0, attempts: 0, sleeps: 0 };
    const deps: ForwardDeps = {
      fetch: async () => {
        counts.attempts++;
        return new Response("busy", { status: 503 });
      },
      sleep: async () => {
        counts.sleeps++;
        controller.abort();
      },
      random: () => 0,
      now: () => 0,
    };
    await expect(forward(call(controller.signal, counts), deps)).rejects.toMatchObject({ code: "request-abandoned", status: 499 });
    expect(counts).toEqual({ lookups: 1, attempts: 1, sleeps: 1 });
  });

  it("a backoff wait still running ends when the signal fires", async () => {
    const controller = new AbortController();
    const counts = { lookups: 0 };
    const deps: ForwardDeps = {
      fetch: async () => new Response("busy", { status: 503 }),
      // A wait that would outlast the test; only the signal can end it.
      sleep: () => {
        queueMicrotask(() => controller.abort());
        return new Promise(() => {});
      },
      random: () => 0,
      now: () => 0,
    };
    await expect(forward(call(controller.signal, counts), deps)).rejects.toMatchObject({ code: "request-abandoned" });
    expect(counts.lookups).toBe(1);
  });

  it("the attempt in flight is aborted, and not retried", async () => {
    const controller = new AbortController();
    const counts = { lookups: 0 };
    let attempts = 0;
    const deps: ForwardDeps = {
      fetch: (request) => {
        attempts++;
        queueMicrotask(() => controller.abort());
        return new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
      },
      sleep: async () => {},
      random: () => 0,
      now: () => 0,
    };
    await expect(forward(call(controller.signal, counts), deps)).rejects.toMatchObject({ code: "request-abandoned" });
    expect({ attempts, lookups: counts.lookups }).toEqual({ attempts: 1, lookups: 1 });
  });

  it("a credential lookup still waiting (a token fetch) is no longer waited for", async () => {
    const controller = new AbortController();
    let attempts = 0;
    const stuck: UpstreamCall = {
      ...call(controller.signal, { lookups: 0 }),
      headers: () => {
        queueMicrotask(() => controller.abort());
        return new Promise(() => {});
      },
    };
    const deps: ForwardDeps = { fetch: async () => (attempts++, new Response("")), sleep: async () => {}, random: () => 0, now: () => 0 };
    await expect(forward(stuck, deps)).rejects.toMatchObject({ code: "request-abandoned" });
    expect(attempts).toBe(0);
  });
});

describe("a caller that gave up is no verdict on the source (docs/protection.md)", () => {
  const policy = readEdgeConfig({ FHIR_SOURCE_EHR: "fhir://ehr.example/fhir?circuit_failure_threshold=1" }).sources.get("ehr")!.protection;
  /** An attempt that fails as a network error would, with the caller's signal fired first when `abandon` is set. */
  function failing(controller: AbortController, abandon: boolean): ForwardDeps {
    return {
      fetch: async () => {
        if (abandon) controller.abort();
        throw new TypeError("Network connection lost");
      },
      sleep: async () => {},
      random: () => 0,
      now: () => 0,
      protection: createProtection(),
    };
  }

  it("an attempt failing after the caller's signal fired leaves the circuit closed", async () => {
    const controller = new AbortController();
    const deps = failing(controller, true);
    await expect(forward({ ...call(controller.signal, { lookups: 0 }), protection: policy }, deps)).rejects.toMatchObject({ code: "request-abandoned" });
    expect(deps.protection!.existing("ehr")!.status(0).circuit).toMatchObject({ state: "closed", failuresInARow: 0 });
  });

  it("the same failure with the caller still waiting opens it (threshold 1)", async () => {
    const controller = new AbortController();
    const deps = failing(controller, false);
    await expect(forward({ ...call(controller.signal, { lookups: 0 }), retryable: false, protection: policy }, deps)).rejects.toMatchObject({ code: "upstream-unreachable" });
    expect(deps.protection!.existing("ehr")!.status(0).circuit.state).toBe("open");
  });
});
