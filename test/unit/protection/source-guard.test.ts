/**
 * One source's guard (design.md "Protection under load"): the circuit, the
 * Retry-After hold and the retry budget together, as `forward()` uses them,
 * with the clock passed in.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ProtectionPolicy } from "../../../src/config/types.ts";
import { CircuitOpenError, SourceHeldError } from "../../../src/protection/errors.ts";
import { admitUnderHold, FREE, recordHoldResult } from "../../../src/protection/retry-after-hold.ts";
import { SourceGuard } from "../../../src/protection/source-guard.ts";

const POLICY: ProtectionPolicy = {
  circuitFailureThreshold: 5,
  circuitFailureWindowMs: 60_000,
  circuitOpenMs: 5_000,
  retryBudgetPercent: 20,
  retryBudgetMinRetries: 10,
  probeLeaseMs: 30_000,
  maxHoldMs: 60_000,
};

describe("an upstream 429/503 with Retry-After holds the source", () => {
  it("refuses every attempt until then with the upstream's status, then lets exactly one go first", () => {
    const g = new SourceGuard("ehr", POLICY);
    const t = g.admit(1, 0);
    g.settle(t, { kind: "response", status: 429, retryAfterMs: 2000 }, 10);
    expect(() => g.admit(1, 1000)).toThrow(SourceHeldError);
    try {
      g.admit(1, 1000);
    } catch (e) {
      expect(e).toMatchObject({ status: 429, issueCode: "throttled", code: "source-throttled", headers: { "Retry-After": "2" } });
    }
    const first = g.admit(1, 2010);
    expect(() => g.admit(1, 2011)).toThrow(SourceHeldError);
    g.settle(first, { kind: "response", status: 200 }, 2100);
    expect(() => g.admit(1, 2101)).not.toThrow();
  });

  it("a retry waits for the hold's end, and gives up when that is beyond max_backoff_wait", () => {
    const g = new SourceGuard("ehr", POLICY);
    g.settle(g.admit(1, 0), { kind: "response", status: 503, retryAfterMs: 3000 }, 0);
    expect(g.retryAfter(100, 10_000, 0)).toBe(3000);
    expect(g.retryAfter(100, 2000, 0)).toBeUndefined();
  });

  it("caps a hold at max_backoff_wait", () => {
    const g = new SourceGuard("ehr", { ...POLICY, maxHoldMs: 1000 });
    g.settle(g.admit(1, 0), { kind: "response", status: 429, retryAfterMs: 3_600_000 }, 0);
    expect(() => g.admit(1, 1000)).not.toThrow();
  });

  it("a 429 without Retry-After holds nothing", () => {
    const s = recordHoldResult(FREE, {}, { kind: "other" }, 0);
    expect(admitUnderHold(s, 0, 1000).admitted).toBe(true);
  });
});

describe("the circuit in the guard", () => {
  it("opens after 5 failures of any kind (5xx, timeout, unreachable), not on 429s, and fails fast naming the source", () => {
    const g = new SourceGuard("ehr", POLICY);
    for (let i = 0; i < 10; i++) g.settle(g.admit(1, i), { kind: "response", status: 429 }, i);
    g.settle(g.admit(1, 20), { kind: "response", status: 500 }, 20);
    g.settle(g.admit(1, 21), { kind: "timeout" }, 21);
    g.settle(g.admit(1, 22), { kind: "unreachable" }, 22);
    g.settle(g.admit(1, 23), { kind: "response", status: 502 }, 23);
    expect(g.status(23).circuit.state).toBe("closed");
    g.settle(g.admit(1, 24), { kind: "response", status: 503 }, 24);
    expect(g.status(24).circuit).toMatchObject({ state: "open", timesOpened: 1 });
    let thrown: unknown;
    try {
      g.admit(1, 1000);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(CircuitOpenError);
    expect(thrown).toMatchObject({ status: 503, code: "circuit-open", headers: { "Retry-After": "5" } });
    expect((thrown as Error).message).toContain("Source ehr");
    expect(g.status(1000).circuit.failedFast).toBe(1);
  });

  it("does not retry once the circuit is open", () => {
    const g = new SourceGuard("ehr", { ...POLICY, circuitFailureThreshold: 1 });
    g.settle(g.admit(1, 0), { kind: "response", status: 500 }, 0);
    expect(g.retryAfter(10, 10_000, 0)).toBeUndefined();
  });

  it("a cancelled attempt counts neither way", () => {
    const g = new SourceGuard("ehr", { ...POLICY, circuitFailureThreshold: 1 });
    g.settle(g.admit(1, 0), { kind: "cancelled" }, 0);
    expect(g.status(0).circuit).toMatchObject({ state: "closed", failuresInARow: 0 });
  });
});

describe("the retry budget in the guard", () => {
  it("counts first attempts as requests, spends on retries, and reports how often it ran out", () => {
    const g = new SourceGuard("ehr", { ...POLICY, retryBudgetMinRetries: 1 });
    g.admit(1, 0);
    expect(g.retryAfter(10, 1000, 0)).toBe(10);
    expect(g.retryAfter(10, 1000, 0)).toBeUndefined();
    const status = g.status(0).retryBudget;
    expect(status).toMatchObject({ requestsInWindow: 1, retriesInWindow: 1, timesExhausted: 1, percent: 20, minRetries: 1, windowSeconds: 10 });
    expect(status.lastExhaustedAt).toBe(new Date(0).toISOString());
  });
});

describe("generated histories of a throttling source (seeded)", () => {
  it("never admits an attempt during a hold, and only one at a time right after it", () => {
    type Step = { kind: "advance"; ms: number } | { kind: "attempt" } | { kind: "answer"; pick: number; status: 200 | 429 | 503; retryAfterMs: number | undefined };
    const step = fc.oneof(
      fc.integer({ min: 1, max: 1500 }).map((ms): Step => ({ kind: "advance", ms })),
      fc.constant<Step>({ kind: "attempt" }),
      fc
        .tuple(fc.nat(), fc.constantFrom(200 as const, 429 as const, 503 as const), fc.option(fc.integer({ min: 0, max: 3000 }), { nil: undefined }))
        .map(([pick, status, retryAfterMs]): Step => ({ kind: "answer", pick, status, retryAfterMs })),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        // The breaker is off here: only the hold decides.
        const g = new SourceGuard("ehr", { ...POLICY, circuitFailureThreshold: 0, probeLeaseMs: 100_000 });
        let now = 0;
        let heldUntil = -1;
        let firstAfterHoldOut = false;
        const out: Array<{ ticket: ReturnType<SourceGuard["admit"]>; firstAfterHold: boolean }> = [];
        for (const s of steps) {
          if (s.kind === "advance") now += s.ms;
          else if (s.kind === "attempt") {
            let ticket;
            try {
              ticket = g.admit(1, now);
            } catch {
              continue;
            }
            expect(now, "admitted during a hold").toBeGreaterThanOrEqual(heldUntil);
            const firstAfterHold = heldUntil >= 0;
            if (firstAfterHold) expect(firstAfterHoldOut, "two attempts out right after a hold").toBe(false);
            firstAfterHoldOut ||= firstAfterHold;
            out.push({ ticket, firstAfterHold });
          } else if (out.length > 0) {
            const [a] = out.splice(s.pick % out.length, 1);
            g.settle(a!.ticket, { kind: "response", status: s.status, retryAfterMs: s.retryAfterMs }, now);
            if (s.status !== 200 && s.retryAfterMs !== undefined) {
              heldUntil = Math.max(heldUntil, now + s.retryAfterMs);
              firstAfterHoldOut = false;
            } else if (a!.firstAfterHold && firstAfterHoldOut) {
              heldUntil = -1;
              firstAfterHoldOut = false;
            }
          }
        }
      }),
      { seed: 20261203, numRuns: 300 },
    );
  });
});
