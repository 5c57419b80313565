/**
 * A retry budget for one source, as a pure state machine (Finagle's and
 * Envoy's idea): retries may add at most `percent` % of the requests sent in
 * the last {@link BUDGET_WINDOW_SECONDS} seconds, and at least `minRetries`
 * in that window, so a quiet source can still retry. A burst of failures then
 * cannot multiply the load on a source that is already struggling.
 *
 * Counts are kept in one-second buckets; the window is the current second and
 * the nine before it.
 * @see https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/circuit_breaker.proto#config-cluster-v3-circuitbreakers-thresholds-retrybudget
 * @see https://twitter.github.io/finagle/guide/Clients.html#retries
 */

export interface BudgetSettings {
  /** Retries may be at most this percentage of the window's requests. */
  percent: number;
  /** Retries always allowed in a window, whatever the percentage gives. */
  minRetries: number;
}

export const BUDGET_WINDOW_SECONDS = 10;

interface Bucket {
  second: number;
  requests: number;
  retries: number;
}

/** Buckets of the last {@link BUDGET_WINDOW_SECONDS} seconds that saw traffic, oldest first. */
export type BudgetState = readonly Bucket[];

export const EMPTY_BUDGET: BudgetState = [];

function current(s: BudgetState, now: number): Bucket[] {
  const second = Math.floor(now / 1000);
  return s.filter((b) => b.second > second - BUDGET_WINDOW_SECONDS && b.second <= second);
}

function bump(s: BudgetState, now: number, field: "requests" | "retries"): BudgetState {
  const second = Math.floor(now / 1000);
  const kept = current(s, now);
  const last = kept[kept.length - 1];
  if (last && last.second === second) return [...kept.slice(0, -1), { ...last, [field]: last[field] + 1 }];
  return [...kept, { second, requests: field === "requests" ? 1 : 0, retries: field === "retries" ? 1 : 0 }];
}

/** The window's totals, and how many retries it allows. */
export function budgetTotals(s: BudgetState, now: number, settings: BudgetSettings): { requests: number; retries: number; allowed: number } {
  let requests = 0;
  let retries = 0;
  for (const b of current(s, now)) {
    requests += b.requests;
    retries += b.retries;
  }
  return { requests, retries, allowed: Math.max(settings.minRetries, Math.floor((requests * settings.percent) / 100)) };
}

/** A request's first attempt went upstream: it adds to what retries may spend. */
export function recordRequest(s: BudgetState, now: number): BudgetState {
  return bump(s, now, "requests");
}

/** Whether one more retry fits the budget now; when it does, it is counted. */
export function withdrawRetry(s: BudgetState, now: number, settings: BudgetSettings): { allowed: boolean; state: BudgetState } {
  const { retries, allowed } = budgetTotals(s, now, settings);
  if (retries >= allowed) return { allowed: false, state: s };
  return { allowed: true, state: bump(s, now, "retries") };
}
