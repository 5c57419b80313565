import { credentialsFor } from "../auth/upstream/index.ts";
import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { UpstreamTimeoutError, UpstreamUnauthorizedError } from "../errors.ts";
import { forwardAuthenticated, type ForwardDeps } from "../proxy/forward.ts";
import { upstreamRequestHeaders } from "../proxy/headers.ts";
import { mapLimit, MAX_OPEN_CONNECTIONS } from "./limit.ts";

/** What every upstream call of one aggregate shares. */
export interface FanOutContext {
  env: EdgeBindings;
  requestId: string;
  /** The client's request headers: only {@link FORWARDED_HEADERS} of them go upstream. */
  clientHeaders: Headers;
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
 * One GET to one source, with its credentials, retry policy, per-attempt
 * timeout and 401 handling, its body read (so its connection is free again).
 * @throws an EdgeError when the source cannot be reached, times out, or refuses the edge's credentials
 */
export async function getFromSource(source: SourceConfig, url: string, ctx: FanOutContext, deps: ForwardDeps): Promise<SourceAnswer> {
  const credentials = credentialsFor(source, ctx.env, deps.now);
  const client = new Headers({ Accept: "application/fhir+json" });
  for (const name of FORWARDED_HEADERS) {
    const value = ctx.clientHeaders.get(name);
    if (value !== null) client.set(name, value);
  }
  const { response, attempts } = await forwardAuthenticated(
    {
      sourceName: source.name,
      method: "GET",
      url,
      headers: async () => upstreamRequestHeaders(client, source.headers, await credentials.authorization(), ctx.requestId),
      body: null,
      retryable: true,
      retry: source.retry,
      timeoutMs: source.timeoutMs,
      protection: source.protection,
    },
    credentials,
    deps,
  );
  if (response.status === 401) {
    await response.body?.cancel();
    throw new UpstreamUnauthorizedError(source.name);
  }
  return { status: response.status, headers: response.headers, text: await response.text(), attempts };
}

/**
 * Runs one call per item, at most {@link MAX_OPEN_CONNECTIONS} at once, all
 * within `timeoutMs`. When the time is up, calls still running are answered
 * by `onTimeout` and their fetches aborted (retry waits end at once), and
 * calls not yet started are not started. Results come in the order of `items`.
 * @param run gets `deps` bound to the deadline; it should not reject
 */
export async function fanOut<T, R>(
  items: readonly T[],
  timeoutMs: number,
  deps: ForwardDeps,
  run: (item: T, deps: ForwardDeps) => Promise<R>,
  onTimeout: (item: T) => R,
): Promise<R[]> {
  const controller = new AbortController();
  const signal = controller.signal;
  const expired = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const bound: ForwardDeps = {
    ...deps,
    fetch: (request) => {
      // An abort, so the source's circuit does not count the edge's own deadline as its failure.
      if (signal.aborted) return Promise.reject(new DOMException("aggregate timeout", "AbortError"));
      return deps.fetch(new Request(request, { signal: AbortSignal.any([request.signal, signal]) }));
    },
    sleep: (ms) => Promise.race([deps.sleep(ms), expired]),
  };
  try {
    return await mapLimit(items, MAX_OPEN_CONNECTIONS, (item) =>
      signal.aborted ? Promise.resolve(onTimeout(item)) : Promise.race([run(item, bound), expired.then(() => onTimeout(item))]),
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
