import type { ProtectionPolicy } from "../config/types.ts";
import { admitAttempt, CLOSED, recordResult, type BreakerSettings, type BreakerState, type BreakerTicket } from "./circuit-breaker.ts";
import { CircuitOpenError, SourceHeldError } from "./errors.ts";
import { admitUnderHold, FREE, recordHoldResult, type HoldState, type HoldTicket } from "./retry-after-hold.ts";
import { budgetTotals, BUDGET_WINDOW_SECONDS, EMPTY_BUDGET, recordRequest, withdrawRetry, type BudgetState } from "./retry-budget.ts";

/** How one upstream attempt ended, as {@link SourceGuard.settle} needs it. */
export type AttemptOutcome =
  | { kind: "response"; status: number; /** the answer's `Retry-After`, in ms from now */ retryAfterMs?: number }
  | { kind: "timeout" }
  | { kind: "unreachable" }
  /** The caller gave up (client gone, aggregate deadline): says nothing about the source. */
  | { kind: "cancelled" };

export type GuardTicket = BreakerTicket & HoldTicket;

/** What `/status` shows of one source's protection. */
export interface ProtectionStatus {
  scope: "per isolate";
  circuit: {
    state: "closed" | "open" | "half-open";
    failuresInARow: number;
    failureThreshold: number;
    openSeconds: number;
    /** When an open circuit lets its probe through. */
    retryAt: string | null;
    timesOpened: number;
    /** Requests answered 503 at once while the circuit was open or probing. */
    failedFast: number;
  };
  hold: { held: boolean; status: number | null; until: string | null; timesHeld: number; requestsHeld: number };
  retryBudget: {
    percent: number;
    minRetries: number;
    windowSeconds: number;
    requestsInWindow: number;
    retriesInWindow: number;
    retriesAllowedInWindow: number;
    /** Retries refused because the budget was spent. */
    timesExhausted: number;
    lastExhaustedAt: string | null;
  };
}

/**
 * Everything the edge remembers about one source in one isolate: its circuit,
 * the hold its upstream asked for, and its retry budget. The decisions are
 * the pure functions of circuit-breaker.ts, retry-after-hold.ts and
 * retry-budget.ts; this class only keeps their state and counts for `/status`.
 * The time is always passed in.
 */
export class SourceGuard {
  #breaker: BreakerState = CLOSED;
  #hold: HoldState = FREE;
  #budget: BudgetState = EMPTY_BUDGET;
  #stats = { timesOpened: 0, failedFast: 0, timesHeld: 0, requestsHeld: 0, timesExhausted: 0, lastExhaustedAt: null as number | null };

  constructor(
    readonly sourceName: string,
    public policy: ProtectionPolicy,
  ) {}

  get #breakerSettings(): BreakerSettings {
    const p = this.policy;
    return { failureThreshold: p.circuitFailureThreshold, windowMs: p.circuitFailureWindowMs, openMs: p.circuitOpenMs, probeLeaseMs: p.probeLeaseMs };
  }

  /**
   * Before upstream attempt number `attempt` (1 for a request's first).
   * @throws CircuitOpenError or SourceHeldError, the answer for the client, when the source is not to be called now
   */
  admit(attempt: number, now: number): GuardTicket {
    const breaker = admitAttempt(this.#breaker, now, this.#breakerSettings);
    if (!breaker.admitted) {
      this.#stats.failedFast++;
      throw new CircuitOpenError(this.sourceName, breaker.retryAt, now, this.#breaker.state === "half-open");
    }
    const hold = admitUnderHold(this.#hold, now, this.policy.probeLeaseMs);
    if (!hold.admitted) {
      // The breaker may have handed out its probe: give it back unused.
      this.#breaker = recordResult(breaker.state, breaker.ticket, "cancelled", now, this.#breakerSettings);
      this.#stats.requestsHeld++;
      throw new SourceHeldError(this.sourceName, hold.status, hold.retryAt, now);
    }
    this.#breaker = breaker.state;
    this.#hold = hold.state;
    if (attempt === 1) this.#budget = recordRequest(this.#budget, now);
    return { ...breaker.ticket, ...hold.ticket };
  }

  /** After an admitted attempt: its result feeds the circuit and the hold. */
  settle(ticket: GuardTicket, outcome: AttemptOutcome, now: number): void {
    const failed = outcome.kind === "timeout" || outcome.kind === "unreachable" || (outcome.kind === "response" && outcome.status >= 500);
    const wasOpen = this.#breaker.state === "open";
    this.#breaker = recordResult(this.#breaker, ticket, outcome.kind === "cancelled" ? "cancelled" : failed ? "failure" : "success", now, this.#breakerSettings);
    if (!wasOpen && this.#breaker.state === "open" && outcome.kind !== "cancelled") this.#stats.timesOpened++;

    const asksHold = outcome.kind === "response" && (outcome.status === 429 || outcome.status === 503) && outcome.retryAfterMs !== undefined;
    const before = this.#hold;
    this.#hold = recordHoldResult(
      this.#hold,
      ticket,
      asksHold
        ? { kind: "hold", status: outcome.status as 429 | 503, retryAfterMs: Math.min(outcome.retryAfterMs!, this.policy.maxHoldMs) }
        : outcome.kind === "cancelled"
          ? { kind: "cancelled" }
          : { kind: "other" },
      now,
    );
    if (this.#hold !== before && this.#hold.held && (!before.held || before.until !== this.#hold.until)) this.#stats.timesHeld++;
  }

  /**
   * Whether the request that just failed may be retried, and after how long:
   * never while the circuit is not closed; not before a hold ends (and not
   * at all when that is beyond `maxWaitMs`); and only within the retry
   * budget, which a yes spends.
   * @param delayMs the wait the retry policy asks for (backoff or the answer's Retry-After)
   * @returns milliseconds to wait, or undefined: give up and answer now
   */
  retryAfter(delayMs: number, maxWaitMs: number, now: number): number | undefined {
    if (this.#breaker.state !== "closed") return undefined;
    const wait = this.#hold.held ? Math.max(delayMs, this.#hold.until - now) : delayMs;
    if (wait > maxWaitMs) return undefined;
    const budget = withdrawRetry(this.#budget, now, { percent: this.policy.retryBudgetPercent, minRetries: this.policy.retryBudgetMinRetries });
    this.#budget = budget.state;
    if (!budget.allowed) {
      this.#stats.timesExhausted++;
      this.#stats.lastExhaustedAt = now;
      return undefined;
    }
    return wait;
  }

  status(now: number): ProtectionStatus {
    const p = this.policy;
    const b = this.#breaker;
    const totals = budgetTotals(this.#budget, now, { percent: p.retryBudgetPercent, minRetries: p.retryBudgetMinRetries });
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      scope: "per isolate",
      circuit: {
        state: b.state,
        failuresInARow: b.state === "closed" ? b.failures : 0,
        failureThreshold: p.circuitFailureThreshold,
        openSeconds: p.circuitOpenMs / 1000,
        retryAt: b.state === "open" ? iso(b.until) : null,
        timesOpened: this.#stats.timesOpened,
        failedFast: this.#stats.failedFast,
      },
      hold: {
        held: this.#hold.held && this.#hold.until > now,
        status: this.#hold.held ? this.#hold.status : null,
        until: this.#hold.held ? iso(this.#hold.until) : null,
        timesHeld: this.#stats.timesHeld,
        requestsHeld: this.#stats.requestsHeld,
      },
      retryBudget: {
        percent: p.retryBudgetPercent,
        minRetries: p.retryBudgetMinRetries,
        windowSeconds: BUDGET_WINDOW_SECONDS,
        requestsInWindow: totals.requests,
        retriesInWindow: totals.retries,
        retriesAllowedInWindow: totals.allowed,
        timesExhausted: this.#stats.timesExhausted,
        lastExhaustedAt: iso(this.#stats.lastExhaustedAt),
      },
    };
  }
}

/** The guards of one edge (one isolate): one per source, kept as long as the isolate lives. */
export interface Protection {
  guardFor(sourceName: string, policy: ProtectionPolicy): SourceGuard;
  /** The guard of a source that has been called, if any. */
  existing(sourceName: string): SourceGuard | undefined;
}

/** A fresh set of guards; `createEdge()` makes one per app, so per isolate for the deployed Worker. */
export function createProtection(): Protection {
  const guards = new Map<string, SourceGuard>();
  return {
    guardFor(sourceName, policy) {
      let guard = guards.get(sourceName);
      if (!guard) {
        guard = new SourceGuard(sourceName, policy);
        guards.set(sourceName, guard);
      } else if (guard.policy !== policy) {
        guard.policy = policy;
      }
      return guard;
    },
    existing: (sourceName) => guards.get(sourceName),
  };
}

/**
 * How a failed attempt counts: the edge's own per-attempt timeout is a
 * timeout; an abort that is not (the client went away, an aggregate's
 * deadline) is a cancellation, which says nothing about the source; anything
 * else is an unreachable source.
 */
export function attemptOutcome(error: unknown, timedOut: boolean): AttemptOutcome {
  if (timedOut) return { kind: "timeout" };
  if (error instanceof Error && error.name === "AbortError") return { kind: "cancelled" };
  return { kind: "unreachable" };
}
