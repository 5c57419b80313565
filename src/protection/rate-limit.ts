import type { Context, MiddlewareHandler } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { RateLimitedError } from "./errors.ts";
import { isRateLimitBinding } from "./rate-limit-config.ts";

/**
 * Which requests a {@link rateLimit} middleware counts: a client's FHIR
 * requests (proxy and aggregate), an admin client's admin requests, or a
 * channel's incoming notifications.
 */
export type RateLimitScope = "client" | "admin" | "sign-in" | "webhooks";

/**
 * Seconds until the next 10-second mark of the clock. A binding does not tell
 * the Worker its period (10 or 60 s) nor when its window rolls over; the next
 * 10-second mark is the earliest any window can, so a client is never told to
 * wait longer than it must (under a 60 s limit it may be told again).
 */
export function rateLimitRetryAfter(now: number): number {
  return 10 - (Math.floor(now / 1000) % 10);
}

/** The binding and the key this request counts against, or undefined: not limited. */
function limitFor(c: Context<EdgeHonoEnv>, scope: RateLimitScope): { binding: string; key: string } | undefined {
  const limits = c.get("config").rateLimits;
  switch (scope) {
    case "client": {
      const client = c.get("client").name;
      const binding = limits.clients.get(client) ?? limits.otherClients;
      if (!binding) return undefined;
      // Source names cannot hold a space, nor be "aggregate" or start with "channel:": the key is unambiguous.
      // A channel's WebSocket inbox counts under its channel, an aggregate under "aggregate".
      const channel = c.req.param("channel");
      const scopeName = c.req.param("source") ?? (channel ? `channel:${channel}` : "aggregate");
      const key = limits.keyBy === "client-and-source" ? `client ${client} ${scopeName}` : `client ${client}`;
      return { binding, key };
    }
    case "admin":
      return limits.admin ? { binding: limits.admin, key: `admin ${c.get("client").name}` } : undefined;
    case "sign-in":
      // Before anyone is authenticated: the admin binding, counted per caller address, so keys cannot be tried without limit.
      return limits.admin ? { binding: limits.admin, key: `sign-in ${c.req.header("CF-Connecting-IP") ?? "unknown"}` } : undefined;
    case "webhooks": {
      if (!limits.webhooks) return undefined;
      // Per caller address too, so a flood of unauthenticated posts cannot spend the real source's count.
      const caller = c.req.header("CF-Connecting-IP") ?? "unknown";
      return { binding: limits.webhooks, key: `webhooks ${c.req.param("channel") ?? ""} ${caller}` };
    }
  }
}

/**
 * Per-client rate limits with Workers Rate Limiting bindings
 * (`[[ratelimits]]` in wrangler.toml), mapped to clients by
 * `PROXY_RATE_LIMITS`. Over the limit: 429 OperationOutcome (`throttled`)
 * with `Retry-After`, and nothing goes upstream. The binding counts per
 * Cloudflare location and approximately (docs/protection.md). Should the
 * binding itself fail, the request goes on: a broken limiter must not become
 * an outage.
 * Mounted after inbound auth for `client` and `admin`, so the count is the
 * authenticated client's.
 * @see https://developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit/
 * @see https://www.rfc-editor.org/rfc/rfc6585#section-4
 */
export const rateLimit =
  (scope: RateLimitScope, now: () => number = Date.now): MiddlewareHandler<EdgeHonoEnv> =>
  async (c, next) => {
    const limit = limitFor(c, scope);
    const binding = limit && c.env[limit.binding];
    if (!limit || !isRateLimitBinding(binding)) return next();
    let success = true;
    try {
      ({ success } = await binding.limit({ key: limit.key }));
    } catch (error) {
      console.error(JSON.stringify({ msg: "rate limit binding failed", requestId: c.get("requestId"), binding: limit.binding, error: error instanceof Error ? error.name : typeof error }));
    }
    if (!success) throw new RateLimitedError(rateLimitRetryAfter(now()));
    return next();
  };
