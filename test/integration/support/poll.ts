/**
 * Bounded polling for the integration tests, so none depends on speed: a test
 * waits until what it expects holds or a deadline passes, then asserts on what
 * it last saw (a failure shows the value, not just a timeout). Plain
 * TypeScript without Node imports, so the workerd tests use it too.
 */

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface PollOptions {
  /** How long to keep trying; default 10 s. */
  timeoutMs?: number;
  /** The pause between tries; default 50 ms. */
  everyMs?: number;
}

/** Reads until `check` holds for the value or the time is up; returns the last value read. */
export async function eventually<T>(read: () => T | Promise<T>, check: (value: T) => boolean, { timeoutMs = 10_000, everyMs = 50 }: PollOptions = {}): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value) || Date.now() > end) return value;
    await sleep(everyMs);
  }
}

/** Polls `check` until it returns true or the time is up; answers whether it became true. */
export function until(check: () => boolean | Promise<boolean>, options?: PollOptions): Promise<boolean> {
  return eventually(check, (ok) => ok, options);
}
