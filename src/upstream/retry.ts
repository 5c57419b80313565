import type { RetryPolicy } from "../config/types.ts";

/**
 * The wait before retry number `retry` (1 for the first retry): exponential
 * backoff with full jitter, `random() * min(maxBackoffWait, factor * 2^(retry-1))`.
 * fhir-kindling (urllib3) semantics for the factor; jitter spreads a fleet of
 * isolates retrying the same upstream.
 * @see https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 * @returns milliseconds
 */
export function backoffDelay(retry: number, policy: Pick<RetryPolicy, "backoffFactor" | "maxBackoffWait">, random: () => number): number {
  const ceiling = Math.min(policy.maxBackoffWait, policy.backoffFactor * 2 ** (retry - 1));
  return Math.round(random() * ceiling * 1000);
}

/**
 * Parses `Retry-After`: delta-seconds or an HTTP-date.
 * @see https://www.rfc-editor.org/rfc/rfc9110#field.retry-after
 * @returns milliseconds from `now`, or undefined when absent or unreadable
 */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * The wait before retry number `retry`: the upstream's `Retry-After` when it
 * gave one (capped at `maxBackoffWait`), else {@link backoffDelay}.
 * @returns milliseconds
 */
export function retryDelay(
  retry: number,
  policy: Pick<RetryPolicy, "backoffFactor" | "maxBackoffWait">,
  retryAfter: string | null,
  now: number,
  random: () => number,
): number {
  const asked = parseRetryAfter(retryAfter, now);
  if (asked !== undefined) return Math.min(asked, policy.maxBackoffWait * 1000);
  return backoffDelay(retry, policy, random);
}

/**
 * Whether a request may be sent twice: its method is in `retryable_methods`,
 * or it is a POST that the server treats as idempotent (a conditional create
 * with `If-None-Exist`, or a search through `_search`).
 * @see https://hl7.org/fhir/R4/http.html#ccreate
 */
export function isRetryable(method: string, headers: Headers, segments: readonly string[], policy: Pick<RetryPolicy, "methods">): boolean {
  if (policy.methods.has(method)) return true;
  if (method !== "POST") return false;
  return headers.has("If-None-Exist") || segments[segments.length - 1] === "_search";
}
