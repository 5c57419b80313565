import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { UpstreamTimeoutError, UpstreamUnauthorizedError } from "../errors.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { sourceClient } from "../upstream/source-client.ts";
import { mapLimit, MAX_OPEN_CONNECTIONS } from "../upstream/limit.ts";

/** What every upstream call of one aggregate shares. */
export interface FanOutContext {
  env: EdgeBindings;
  requestId: string;
  /** The client's request headers: only {@link FORWARDED_HEADERS} of them go upstream. */
  clientHeaders: Headers;
  /** Fires when the aggregate's time is up or its client went away. */
  signal?: AbortSignal;
}

/**
 * Client headers that still mean something when the edge builds the answer
 * itself: FHIR's `Prefer: handling=strict|lenient` for searches, and the
 * language. `Accept` is always FHIR JSON, since the edge parses every page.
 */
const FORWARDED_HEADERS = ["prefer", "accept-language"];

export interface SourceAnswer {
  status: number;
  headers: Headers;
  text: string;
  attempts: number;
}

/**
 * One GET to one source through its {@link sourceClient} (credentials, retry
 * policy, per-attempt timeout, the 401 refresh), its body read (so its
 * connection is free again). `ctx.signal` ends retries and token lookups
 * when the aggregate's time is up.
 * @param path the raw path and query after the source's base
 * @throws an EdgeError when the source cannot be reached, times out, or refuses the edge's credentials
 */
export async function getFromSource(source: SourceConfig, path: string, ctx: FanOutContext, deps: ForwardDeps): Promise<SourceAnswer> {
  const headers = new Headers({ Accept: "application/fhir+json" });
  for (const name of FORWARDED_HEADERS) {
    const value = ctx.clientHeaders.get(name);
    if (value !== null) headers.set(name, value);
  }
  const client = sourceClient(source, ctx.env, deps);
  const { response, attempts } = await client.send({
    method: "GET",
    path,
    requestId: ctx.requestId,
    headers,
    retryable: true,
    // The source's circuit breaker, Retry-After hold and retry budget (docs/protection.md).
    guarded: true,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (response.status === 401) {
    await response.body?.cancel();
    throw new UpstreamUnauthorizedError(source.name);
  }
  return { status: response.status, headers: response.headers, text: await client.text(response, ctx.requestId), attempts };
}

/**
 * Runs one call per item, at most {@link MAX_OPEN_CONNECTIONS} at once, all
 * within `timeoutMs`. When the time is up (or `parent`, the client's own
 * signal, fires), calls still running are answered by `onTimeout` and the
 * signal they were given fires, which aborts their fetches and stops their
 * retries, backoff waits and token lookups; calls not yet started are not
 * started. Results come in the order of `items`.
 * @param run gets the signal bound to the deadline; it should not reject
 */
export async function fanOut<T, R>(
  items: readonly T[],
  timeoutMs: number,
  run: (item: T, signal: AbortSignal) => Promise<R>,
  onTimeout: (item: T) => R,
  parent?: AbortSignal,
): Promise<R[]> {
  const controller = new AbortController();
  const signal = parent ? AbortSignal.any([controller.signal, parent]) : controller.signal;
  const expired = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    return await mapLimit(items, MAX_OPEN_CONNECTIONS, (item) =>
      signal.aborted ? Promise.resolve(onTimeout(item)) : Promise.race([run(item, signal), expired.then(() => onTimeout(item))]),
    );
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** The failure of a source still running when `AGGREGATE_TIMEOUT` is up. */
export function aggregateTimeout(sourceName: string, timeoutMs: number): UpstreamTimeoutError {
  return new UpstreamTimeoutError(`Source ${sourceName} did not answer within the aggregate timeout (${timeoutMs / 1000} s)`);
}
