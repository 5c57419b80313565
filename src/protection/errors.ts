import { EdgeError } from "../errors.ts";

/** `Retry-After` in whole seconds, at least 1, for a moment `retryAt` (ms). */
function retryAfterSeconds(retryAt: number, now: number): number {
  return Math.max(1, Math.ceil((retryAt - now) / 1000));
}

/** 429: the client is over its rate limit (a Workers Rate Limiting binding said no). */
export class RateLimitedError extends EdgeError {
  constructor(seconds: number) {
    super(429, "throttled", "rate-limited", `Too many requests from this client; retry after ${seconds} s`, { headers: { "Retry-After": String(seconds) } });
  }
}

/**
 * 503: the source's circuit is open (it kept failing), so the edge answers at
 * once instead of calling it; names the source and when it will be tried again.
 */
export class CircuitOpenError extends EdgeError {
  constructor(sourceName: string, retryAt: number, now: number, probing: boolean) {
    const seconds = retryAfterSeconds(retryAt, now);
    super(
      503,
      "transient",
      "circuit-open",
      probing
        ? `Source ${sourceName} kept failing; the edge is trying it again with one request, retry after ${seconds} s`
        : `Source ${sourceName} kept failing, so the edge is not calling it until ${new Date(retryAt).toISOString()} (retry after ${seconds} s)`,
      { headers: { "Retry-After": String(seconds) } },
    );
  }
}

/**
 * 429 or 503: the source itself asked the edge to wait (`Retry-After` on a
 * 429 or 503), and the edge holds its requests to it until then.
 */
export class SourceHeldError extends EdgeError {
  constructor(sourceName: string, status: 429 | 503, retryAt: number, now: number) {
    const seconds = retryAfterSeconds(retryAt, now);
    super(
      status,
      status === 429 ? "throttled" : "transient",
      status === 429 ? "source-throttled" : "source-unavailable",
      `Source ${sourceName} asked the edge to wait (upstream ${status} with Retry-After); retry after ${seconds} s`,
      { headers: { "Retry-After": String(seconds) } },
    );
  }
}
