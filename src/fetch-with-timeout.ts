/** The request got no response headers within its time. */
export class FetchTimeoutError extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
    this.name = "FetchTimeoutError";
  }
}

/**
 * `fetch` that gives up after `ms` until the response headers arrive, with
 * {@link FetchTimeoutError}; the body is then read without a deadline. Unlike
 * `AbortSignal.timeout`, its timer is cleared as soon as the answer comes, so
 * no timer outlives the call (a pending timer keeps a Durable Object busy).
 * The one timeout of every outbound request: upstream attempts, token
 * endpoints, JWKS, deliveries. A caller's own `signal` aborts the request too
 * (and its body, once the answer has come); that abort is rethrown as it is.
 */
export async function fetchWithTimeout(
  url: string,
  init: RequestInit,
  ms: number,
  fetcher: (r: Request) => Promise<Response> = (r) => fetch(r),
): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  const signal = init.signal ? AbortSignal.any([controller.signal, init.signal]) : controller.signal;
  try {
    return await fetcher(new Request(url, { ...init, signal }));
  } catch (error) {
    if (controller.signal.aborted) throw new FetchTimeoutError(ms);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
