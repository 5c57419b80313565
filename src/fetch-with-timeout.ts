/**
 * `fetch` that gives up after `ms` until the response headers arrive. Unlike
 * `AbortSignal.timeout`, its timer is cleared as soon as the answer comes, so
 * no timer outlives the call (a pending timer keeps a Durable Object busy).
 */
export async function fetchWithTimeout(request: Request, ms: number, fetcher: (r: Request) => Promise<Response> = (r) => fetch(r)): Promise<Response> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`timed out after ${ms} ms`)), ms);
  try {
    return await fetcher(new Request(request, { signal: controller.signal }));
  } finally {
    clearTimeout(timer);
  }
}
