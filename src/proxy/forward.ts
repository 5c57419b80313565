import type { UpstreamCredentials } from "../auth/upstream/credentials.ts";
import type { ProtectionPolicy, RetryPolicy } from "../config/types.ts";
import { UpstreamTimeoutError, UpstreamUnavailableError } from "../errors.ts";
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
  /** The source's protection policy: with it (and `deps.protection`), the call is guarded (docs/protection.md). */
  protection?: ProtectionPolicy;
}

export interface ForwardResult {
  response: Response;
  attempts: number;
}

function attempt(call: UpstreamCall, headers: Headers, deps: ForwardDeps): Promise<Response> {
  const body = call.method === "GET" || call.method === "HEAD" ? null : call.body;
  return fetchWithTimeout(call.url, { method: call.method, headers, body, redirect: "manual" }, call.timeoutMs, deps.fetch);
}

/**
 * Sends one request upstream with the source's retry policy: at most
 * `maxAttempts` upstream requests (the first included), retrying the
 * configured statuses, network errors and per-attempt timeouts, but only for
 * a request that may be sent twice. Waits are timers, never a busy loop.
 * When retries run out on a retryable status, the upstream's last answer is
 * returned as it is. A call that carries the source's `protection` policy
 * also passes its circuit breaker, Retry-After hold and retry budget
 * (docs/protection.md): a retry they refuse ends the loop the same way, and
 * a source they hold is answered without a call.
 * @throws CircuitOpenError or SourceHeldError (src/protection/errors.ts) when the source is not to be called now
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
      headers = await call.headers();
    } catch (error) {
      // Nothing went upstream: hand a probe's turn back.
      if (ticket) guard?.settle(ticket, { kind: "cancelled" }, deps.now());
      throw error;
    }
    let response: Response;
    try {
      response = await attempt(call, headers, deps);
    } catch (error) {
      const outcome = attemptOutcome(error, error instanceof FetchTimeoutError);
      if (ticket) guard?.settle(ticket, outcome, deps.now());
      const wait = n < maxAttempts && outcome.kind !== "cancelled" ? mayRetry(backoffDelay(n, call.retry, deps.random)) : undefined;
      if (wait !== undefined) {
        await deps.sleep(wait);
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
        await deps.sleep(wait);
        continue;
      }
    }
    return { response, attempts: n };
  }
}

/**
 * {@link forward} with the source's credentials: an upstream 401 on a cached
 * token drops that token and, when a fresh one can be had and the body can be
 * sent again, sends the request exactly once more.
 * @see docs/upstream-auth.md#the-token-cache
 */
export async function forwardAuthenticated(call: UpstreamCall, credentials: Pick<UpstreamCredentials, "invalidate">, deps: ForwardDeps): Promise<ForwardResult> {
  const first = await forward(call, deps);
  if (first.response.status !== 401 || call.body instanceof ReadableStream || !(await credentials.invalidate())) return first;
  await first.response.body?.cancel();
  const again = await forward({ ...call, retryable: false }, deps);
  return { response: again.response, attempts: first.attempts + again.attempts };
}
