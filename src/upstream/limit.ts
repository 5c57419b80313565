/**
 * Workers let one request hold at most six connections open at once; further
 * fetches wait for a free one, and a response whose body is never read keeps
 * its connection. The fan-out therefore never runs more than this many source
 * calls at once, each reading its body before it gives its slot back.
 * @see https://developers.cloudflare.com/workers/platform/limits/#simultaneous-open-connections
 */
export const MAX_OPEN_CONNECTIONS = 6;

/**
 * Runs `run` over `items` with at most `limit` calls in flight; results come
 * back in the order of `items`. `run` should not reject: one failure would
 * end the whole map while the other calls go on.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, run: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await run(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
