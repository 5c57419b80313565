import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY } from "../../../src/config/source.ts";
import { backoffDelay, isRetryable, parseRetryAfter, retryDelay } from "../../../src/upstream/retry.ts";

/** A small seeded generator (mulberry32), so jitter is reproducible. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("backoff: exponential with full jitter", () => {
  it("the ceiling doubles from backoff_factor: 0.5, 1, 2, 4 s", () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, DEFAULT_RETRY, top))).toEqual([500, 1000, 2000, 4000]);
  });

  it("is capped at max_backoff_wait", () => {
    expect(backoffDelay(20, { backoffFactor: 0.5, maxBackoffWait: 60 }, () => 0.999999)).toBe(60_000);
  });

  it("draws uniformly between 0 and the ceiling (seeded)", () => {
    const random = seeded(42);
    const draws = Array.from({ length: 2000 }, () => backoffDelay(3, DEFAULT_RETRY, random));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThanOrEqual(2000);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    expect(mean).toBeGreaterThan(900);
    expect(mean).toBeLessThan(1100);
    // The same seed gives the same schedule.
    const again = seeded(42);
    expect(Array.from({ length: 5 }, () => backoffDelay(3, DEFAULT_RETRY, again))).toEqual(draws.slice(0, 5));
  });
});

describe("Retry-After", () => {
  const now = Date.parse("2026-11-22T10:00:00Z");
  it("reads delta-seconds and HTTP-dates", () => {
    expect(parseRetryAfter("7", now)).toBe(7000);
    expect(parseRetryAfter("Sun, 22 Nov 2026 10:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Sun, 22 Nov 2026 09:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
  it("is honoured, capped at max_backoff_wait, and replaces the jitter", () => {
    expect(retryDelay(1, DEFAULT_RETRY, "3", now, () => 0)).toBe(3000);
    expect(retryDelay(1, { backoffFactor: 0.5, maxBackoffWait: 2 }, "120", now, () => 0)).toBe(2000);
    expect(retryDelay(1, DEFAULT_RETRY, null, now, () => 0.5)).toBe(250);
  });
});

describe("which requests may be sent twice", () => {
  const none = new Headers();
  it("the retryable_methods, by default GET, HEAD, PUT, DELETE, OPTIONS", () => {
    for (const m of ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]) expect(isRetryable(m, none, ["Patient"], DEFAULT_RETRY)).toBe(true);
    for (const m of ["POST", "PATCH"]) expect(isRetryable(m, none, ["Patient"], DEFAULT_RETRY)).toBe(false);
  });
  it("a POST with If-None-Exist or to _search counts as idempotent", () => {
    expect(isRetryable("POST", new Headers({ "If-None-Exist": "identifier=x|1" }), ["Patient"], DEFAULT_RETRY)).toBe(true);
    expect(isRetryable("POST", none, ["Patient", "_search"], DEFAULT_RETRY)).toBe(true);
  });
  it("POST and PATCH when configured", () => {
    expect(isRetryable("PATCH", none, ["Patient", "1"], { methods: new Set(["PATCH"]) })).toBe(true);
  });
});
