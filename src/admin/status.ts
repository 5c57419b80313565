import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";

/**
 * `GET /status`: every source, misconfigured ones included, with its
 * configuration state and what is wrong (never a value), and every edge-wide
 * configuration problem.
 * @see ../../shared/design.md section 3, "Operations and discovery"
 */
export const statusHandler = (c: Context<EdgeHonoEnv>): Response => {
  c.set("logRoute", "status");
  const config = c.get("config");
  const sources = [
    ...[...config.sources.values()].map((s) => ({
      name: s.name,
      state: "ok" as const,
      url: s.baseUrl,
      auth: s.auth.kind,
      rewriteBodies: s.rewriteBodies,
      retry: { maxAttempts: s.retry.maxAttempts, statusCodes: [...s.retry.statusCodes], methods: [...s.retry.methods] },
      timeoutSeconds: s.timeoutMs / 1000,
    })),
    ...[...config.brokenSources.entries()].map(([name, issues]) => ({
      name,
      state: "misconfigured" as const,
      issues: issues.map(({ field, code, message }) => ({ field, code, message })),
    })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  return c.json({
    auth: config.inbound?.mode ?? "misconfigured",
    publicUrl: config.publicUrl ?? null,
    sources,
    configurationErrors: config.issues.map(({ subject, field, code, message }) => ({ subject, field, code, message })),
  });
};
