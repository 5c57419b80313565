import type { Context } from "hono";
import type { SourceConfig } from "../config/types.ts";
import type { EdgeHonoEnv } from "../context.ts";
import { mapLimit, MAX_OPEN_CONNECTIONS } from "../upstream/limit.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { SourceGuard } from "../protection/source-guard.ts";
import { reachability } from "./reachability.ts";
import { channelsStatus } from "../subscriptions/status.ts";
import { sessionKeySource } from "../auth/inbound/session-cookie.ts";
import { prefersHtml } from "./console/negotiate.ts";
import { renderConsole } from "./console/routes.tsx";
import { bulkStatus } from "../bulk/status.ts";

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** An OAuth source's token state from its coordinator: expiry and counters, never the token. */
async function tokenState(c: Context<EdgeHonoEnv>, source: SourceConfig) {
  if (source.auth.kind !== "client-credentials" && source.auth.kind !== "jwt-assertion") return undefined;
  try {
    const ns = c.env.TOKEN_COORDINATOR;
    const s = await ns.get(ns.idFromName(source.name)).status();
    return { expiresAt: iso(s.expiresAt), refreshAt: iso(s.refreshAt), tokenFetches: s.fetches, lastFetchAt: iso(s.lastFetchAt), lastError: s.lastError };
  } catch {
    return { error: "token coordinator unavailable" };
  }
}

/**
 * What `GET /status` reports: every source, misconfigured ones included, with its
 * configuration state and what is wrong (never a value), its auth kind and
 * token expiry (never the token), its last reachability check (a `metadata`
 * probe, cached for a minute per isolate), and every edge-wide configuration
 * problem.
 * @see docs/operations.md#get-status
 */
export async function buildStatus(c: Context<EdgeHonoEnv>, deps: ForwardDeps): Promise<Record<string, unknown>> {
  const config = c.get("config");
  const tokenCacheKey = typeof c.env.TOKEN_CACHE_KEY === "string" && c.env.TOKEN_CACHE_KEY !== "";
  const configured = [...config.sources.values()];
  const reached = await mapLimit(configured, MAX_OPEN_CONNECTIONS, (s) => reachability(s, c.env, deps, c.get("requestId")));
  const ok = await Promise.all(
    configured.map(async (s, i) => ({
      name: s.name,
      state: "ok" as const,
      url: s.baseUrl,
      auth: s.auth.kind,
      reachability: reached[i],
      ...(s.auth.kind === "client-credentials" || s.auth.kind === "jwt-assertion"
        ? {
            tokenCache: tokenCacheKey ? "memory, coordinator and KV (AES-GCM)" : "memory and coordinator only: TOKEN_CACHE_KEY is not set, tokens are not written to KV",
            token: await tokenState(c, s),
          }
        : {}),
      rewriteBodies: s.rewriteBodies,
      retry: { maxAttempts: s.retry.maxAttempts, statusCodes: [...s.retry.statusCodes], methods: [...s.retry.methods] },
      timeoutSeconds: s.timeoutMs / 1000,
      // A source not called yet in this isolate has a closed circuit and an untouched budget.
      protection: (deps.protection?.existing(s.name) ?? new SourceGuard(s.name, s.protection)).status(deps.now()),
    })),
  );
  const sources = [
    ...ok,
    ...[...config.brokenSources.entries()].map(([name, issues]) => ({
      name,
      state: "misconfigured" as const,
      issues: issues.map(({ field, code, message }) => ({ field, code, message })),
    })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  return {
    auth: config.inbound?.mode ?? "misconfigured",
    publicUrl: config.publicUrl ?? null,
    accessLog: config.accessLog,
    sources,
    aggregate: {
      timeoutSeconds: config.aggregate.timeoutMs / 1000,
      cursorKey: config.aggregate.cursorSecret
        ? "AGGREGATE_CURSOR_SECRET"
        : "per isolate: AGGREGATE_CURSOR_SECRET is not set, so an aggregate's next link only works on the isolate that made it",
    },
    rateLimits: {
      scope: "per Cloudflare location, approximate (Workers Rate Limiting)",
      clients: Object.fromEntries(config.rateLimits.clients),
      otherClients: config.rateLimits.otherClients ?? null,
      admin: config.rateLimits.admin ?? null,
      webhooks: config.rateLimits.webhooks ?? null,
      keyBy: config.rateLimits.keyBy,
    },
    bulk: bulkStatus(c.env),
    channels: await channelsStatus(c),
    console: { sessionKey: sessionKeySource(c.env) },
    configurationErrors: config.issues.map(({ subject, field, code, message }) => ({ subject, field, code, message })),
  };
}

/**
 * `GET /status` (and `GET /`): the status as JSON, or as the console's page
 * to a browser that asks for HTML; both from {@link buildStatus}.
 * @see docs/console.md
 */
export const statusHandler = (deps: ForwardDeps) => async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  c.set("logRoute", "status");
  const report = await buildStatus(c, deps);
  if (prefersHtml(c.req.header("Accept"))) return renderConsole(c, report, deps.now());
  c.header("Vary", "Accept, Cookie");
  c.header("Cache-Control", "no-store");
  return c.json(report);
};
