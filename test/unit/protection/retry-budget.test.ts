/**
 * The retry budget (design.md "Protection under load": retries to a source
 * stay within a fraction of its recent requests), as a pure state machine:
 * examples, then generated histories against a reference model that keeps
 * every event (fast-check model-based, seeded).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { budgetTotals, BUDGET_WINDOW_SECONDS, EMPTY_BUDGET, recordRequest, withdrawRetry, type BudgetSettings, type BudgetState } from "../../../src/protection/retry-budget.ts";

const SEED = 20261202;
const DEFAULT: BudgetSettings = { percent: 20, minRetries: 10 };

describe("retries may add at most 20% of the last 10 s of requests, with a floor", () => {
  it("allows the floor to a quiet source, then refuses", () => {
    let s: BudgetState = recordRequest(EMPTY_BUDGET, 0);
    let allowed = 0;
    for (let i = 0; i < 15; i++) {
      const w = withdrawRetry(s, 100 + i, DEFAULT);
      s = w.state;
      if (w.allowed) allowed++;
    }
    expect(allowed).toBe(10);
  });

  it("allows 20% of a busy source's requests, and refuses past it", () => {
    let s: BudgetState = EMPTY_BUDGET;
    for (let i = 0; i < 200; i++) s = recordRequest(s, i * 10);
    let allowed = 0;
    for (let i = 0; i < 60; i++) {
      const w = withdrawRetry(s, 2000, DEFAULT);
      s = w.state;
      if (w.allowed) allowed++;
    }
    expect(allowed).toBe(40);
    expect(budgetTotals(s, 2000, DEFAULT)).toEqual({ requests: 200, retries: 40, allowed: 40 });
  });

  it("forgets what is older than the window", () => {
    let s: BudgetState = EMPTY_BUDGET;
    for (let i = 0; i < 10; i++) s = withdrawRetry(s, 0, DEFAULT).state;
    expect(withdrawRetry(s, 999, DEFAULT).allowed).toBe(false);
    expect(withdrawRetry(s, BUDGET_WINDOW_SECONDS * 1000, DEFAULT).allowed).toBe(true);
  });
});

/** The reference: every request and retry with its second, counted over the last 10 seconds. */
interface Model {
  now: number;
  requests: number[];
  retries: number[];
}
interface Real {
  state: BudgetState;
}
const inWindow = (seconds: number[], now: number) => seconds.filter((s) => s > Math.floor(now / 1000) - BUDGET_WINDOW_SECONDS).length;

function commands(settings: BudgetSettings) {
  class Advance implements fc.Command<Model, Real> {
    constructor(readonly ms: number) {}
    check = () => true;
    run(m: Model) {
      m.now += this.ms;
    }
    toString = () => `advance(${this.ms})`;
  }
  class Request implements fc.Command<Model, Real> {
    check = () => true;
    run(m: Model, r: Real) {
      r.state = recordRequest(r.state, m.now);
      m.requests.push(Math.floor(m.now / 1000));
    }
    toString = () => "request";
  }
  class Retry implements fc.Command<Model, Real> {
    check = () => true;
    run(m: Model, r: Real) {
      const w = withdrawRetry(r.state, m.now, settings);
      r.state = w.state;
      const requests = inWindow(m.requests, m.now);
      const retries = inWindow(m.retries, m.now);
      const expected = retries < Math.max(settings.minRetries, Math.floor((requests * settings.percent) / 100));
      expect(w.allowed, `retry at ${m.now} with ${requests} requests, ${retries} retries`).toBe(expected);
      if (w.allowed) m.retries.push(Math.floor(m.now / 1000));
      // The invariant: no window ever holds more retries than the budget allows.
      expect(inWindow(m.retries, m.now)).toBeLessThanOrEqual(Math.max(settings.minRetries, Math.floor((requests * settings.percent) / 100)));
      expect(budgetTotals(r.state, m.now, settings)).toMatchObject({ requests, retries: inWindow(m.retries, m.now) });
    }
    toString = () => "retry";
  }
  return fc.commands(
    [fc.integer({ min: 1, max: 4000 }).map((ms) => new Advance(ms)), fc.constant(new Request()), fc.constant(new Request()), fc.constant(new Retry())],
    { maxCommands: 300 },
  );
}

describe("generated histories (model-based, seeded)", () => {
  it("allows a retry exactly when the reference model does, so no window exceeds the budget", () => {
    const settingsArb = fc.record({ percent: fc.integer({ min: 0, max: 100 }), minRetries: fc.integer({ min: 0, max: 5 }) });
    fc.assert(
      fc.property(
        settingsArb.chain((settings) => fc.tuple(fc.constant(settings), commands(settings))),
        ([, cmds]) => {
          fc.modelRun(() => ({ model: { now: 1_000_000, requests: [], retries: [] }, real: { state: EMPTY_BUDGET } }), cmds);
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });
});
