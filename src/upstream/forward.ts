import type { ProtectionPolicy, RetryPolicy } from "../config/types.ts";
import { RequestAbandonedError, UpstreamTimeoutError, UpstreamUnavailableError } from "../errors.ts";
import { fetchWithTimeout, FetchTimeoutError } from "../fetch-with-timeout.ts";
import { attemptOutcome, type Protection } from "../protection/source-guard.ts";
import { retryDelay, backoffDelay, parseRetryAfter } from "./retry.ts";

/** The I/O a forward needs, passed in so tests and the clock can be controlled. */
export interface ForwardDeps {
  fetch: (request: Request) => Promise<Response>;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
  now: () => number;
  /** Circuit breakers, Retry-After holds and retry budgets per source; calls that carry a `protection` policy go through them. */
  protection?: Protection;
}

export const defaultDeps: ForwardDeps = {
  fetch: (request) => fetch(request),
  sleep: (ms) => (ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms))),
  random: Math.random,
  now: Date.now,
};

export interface UpstreamCall {
  sourceName: string;
  method: string;
  url: string;
  /** Rebuilt per attempt, so a fresh token (or assertion) can go into each. */
  headers: () => Promise<Headers>;
  /** A buffered body can be sent again; a stream only once. */
  body: ArrayBuffer | ReadableStream | null;
  /** Whether this request may be sent more than once. */
  retryable: boolean;
  retry: RetryPolicy;
  timeoutMs: number;
  /** The caller gave up (a client that disconnected, an aggregate past its timeout): no further attempt, wait or token. */
  signal?: AbortSignal;
  /** The source's protection policy: with it (and `deps.protection`), the call is guarded (docs/protection.md). */
  protection?: ProtectionPolicy;
}

export interface ForwardResult {
  response: Response;
  attempts: number;
}

/** Throws {@link RequestAbandonedError} once `signal` has fired. */
function throwIfAbandoned(signal: AbortSignal | undefined, sourceName: string): void {
  if (signal?.aborted) throw new RequestAbandonedError(sourceName);
}

/**
 * `promise`, or {@link RequestAbandonedError} as soon as `signal` fires,
 * whichever comes first. The promise itself is not cancelled (a token
 * coordinator call or a timer), only no longer waited for.
 */
export function unlessAbandoned<T>(promise: Promise<T>, signal: AbortSignal | undefined, sourceName: string): Promise<T> {
  if (!signal) return promise;
  throwIfAbandoned(signal, sourceName);
  let onAbort: () => void = () => {};
  const abandoned = new Promise<never>((_, reject) => {
    onAbort = () => reject(new RequestAbandonedError(sourceName));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, abandoned]).finally(() => signal.removeEventListener("abort", onAbort));
}

function attempt(call: UpstreamCall, headers: Headers, deps: ForwardDeps): Promise<Response> {
  const body = call.method === "GET" || call.method === "HEAD" ? null : call.body;
  return fetchWithTimeout(call.url, { method: call.method, headers, body, redirect: "manual", signal: call.signal }, call.timeoutMs, deps.fetch);
}

/**
 * Sends one request upstream with the source's retry policy: at most
 * `maxAttempts` upstream requests (the first included), retrying the
 * configured statuses, network errors and per-attempt timeouts, but only for
 * a request that may be sent twice. Waits are timers, never a busy loop.
 * When retries run out on a retryable status, the upstream's last answer is
 * returned as it is. Once `call.signal` fires, no further attempt, wait or
 * credential lookup starts, and the one in flight is aborted. A call that
 * carries the source's `protection` policy also passes its circuit breaker,
 * Retry-After hold and retry budget (docs/protection.md): a retry they refuse
 * ends the loop the same way, and a source they hold is answered without a call.
 * @throws CircuitOpenError or SourceHeldError (src/protection/errors.ts) when the source is not to be called now
 * @throws RequestAbandonedError once `call.signal` has fired
 * @see https://hl7.org/fhir/R4/http.html (the interactions forwarded)
 * @see docs/upstream-client.md
 * @see docs/proxy.md#retries
 */
export async function forward(call: UpstreamCall, deps: ForwardDeps): Promise<ForwardResult> {
  const maxAttempts = call.retryable && !(call.body instanceof ReadableStream) ? call.retry.maxAttempts : 1;
  // Protection hooks (src/protection): admit before each attempt (throws the
  // client's 503/429 when the source is not to be called), settle after it,
  // and ask before each retry (circuit, hold, budget).
  const guard = call.protection && deps.protection?.guardFor(call.sourceName, call.protection);
  const mayRetry = (delayMs: number) => (guard ? guard.retryAfter(delayMs, call.retry.maxBackoffWait * 1000, deps.now()) : delayMs);
  for (let n = 1; ; n++) {
    const ticket = guard?.admit(n, deps.now());
    let headers: Headers;
    try {
      // Credentials come first and outside the retry: a token endpoint's refusal is not a network error.
      headers = await unlessAbandoned(call.headers(), call.signal, call.sourceName);
    } catch (error) {
      // Nothing went upstream: hand a probe's turn back.
      if (ticket) guard?.settle(ticket, { kind: "cancelled" }, deps.now());
      throw error;
    }
    let response: Response;
    try {
      throwIfAbandoned(call.signal, call.sourceName);
      response = await attempt(call, headers, deps);
    } catch (error) {
      // A caller that gave up is no verdict on the source.
      const outcome = call.signal?.aborted ? ({ kind: "cancelled" } as const) : attemptOutcome(error, error instanceof FetchTimeoutError);
      if (ticket) guard?.settle(ticket, outcome, deps.now());
      throwIfAbandoned(call.signal, call.sourceName);
      const wait = n < maxAttempts && outcome.kind !== "cancelled" ? mayRetry(backoffDelay(n, call.retry, deps.random)) : undefined;
      if (wait !== undefined) {
        await unlessAbandoned(deps.sleep(wait), call.signal, call.sourceName);
        continue;
      }
      if (error instanceof FetchTimeoutError) {
        throw new UpstreamTimeoutError(`Source ${call.sourceName} did not answer within ${call.timeoutMs / 1000} s (${n} attempt${n > 1 ? "s" : ""})`);
      }
      throw new UpstreamUnavailableError("upstream-unreachable", `Source ${call.sourceName} could not be reached (${n} attempt${n > 1 ? "s" : ""})`, error);
    }
    const retryAfter = response.headers.get("Retry-After");
    if (ticket) guard?.settle(ticket, { kind: "response", status: response.status, retryAfterMs: parseRetryAfter(retryAfter, deps.now()) }, deps.now());
    if (n < maxAttempts && call.retry.statusCodes.has(response.status)) {
      const wait = mayRetry(retryDelay(n, call.retry, retryAfter, deps.now(), deps.random));
      if (wait !== undefined) {
        await response.body?.cancel();
        throwIfAbandoned(call.signal, call.sourceName);
        await unlessAbandoned(deps.sleep(wait), call.signal, call.sourceName);
        continue;
      }
    }
    return { response, attempts: n };
  }
}
