import { Hono } from "hono";
import { requireAdmin } from "./admin/require-admin.ts";
import { statusHandler } from "./admin/status.ts";
import { smartScopes } from "./auth/inbound/authorize.ts";
import { inboundAuth } from "./auth/inbound/index.ts";
import { jwksHandler } from "./auth/upstream/jwks-route.ts";
import type { EdgeHonoEnv } from "./context.ts";
import { NotFoundError, renderError } from "./errors.ts";
import { sourceMetadataHandler, smartConfigurationHandler } from "./proxy/discovery.ts";
import { defaultDeps, type ForwardDeps } from "./proxy/forward.ts";
import { proxyHandler } from "./proxy/handler.ts";
import { requestContext } from "./request-context.ts";
import { registerHandler, replayHandler } from "./subscriptions/admin-routes.ts";
import { webhookHandler } from "./subscriptions/webhook-route.ts";

export interface EdgeOptions {
  /** The I/O used for upstream calls: override in tests, or to instrument fetch. */
  deps?: Partial<ForwardDeps>;
}

/**
 * Builds the fhir-edge hono app. Read top to bottom, this is where every
 * request goes; the deployable Worker is this factory with its defaults.
 * @see ../shared/design.md section 3
 */
export function createEdge(options: EdgeOptions = {}): Hono<EdgeHonoEnv> {
  const deps: ForwardDeps = { ...defaultDeps, ...options.deps };
  const app = new Hono<EdgeHonoEnv>();

  app.use("*", requestContext());
  app.onError((error, c) => {
    if (!(error instanceof Error && "status" in error && "issueCode" in error)) {
      console.error(JSON.stringify({ msg: "unhandled error", requestId: c.get("requestId"), error: String(error) }));
    }
    return renderError(error, c.get("requestId") ?? crypto.randomUUID());
  });
  app.notFound((c) => renderError(new NotFoundError("route-not-found", "No such route on this edge"), c.get("requestId")));

  // Operations (admin clients only) and the edge's own public keys (public).
  app.get("/status", inboundAuth(), requireAdmin(), statusHandler);
  app.get("/.well-known/jwks.json", jwksHandler);
  app.post("/admin/channels/:channel/register", inboundAuth(), requireAdmin(), registerHandler(deps));
  app.get("/admin/channels/:channel/events", inboundAuth(), requireAdmin(), replayHandler);

  // Subscription notifications in: authenticated by the channel's own secret.
  app.post("/webhooks/:channel", webhookHandler);

  // Discovery per source: public, and describing the edge's security.
  app.get("/:source/metadata", sourceMetadataHandler(deps));
  app.get("/:source/.well-known/smart-configuration", smartConfigurationHandler);

  // Any FHIR interaction, proxied.
  const proxy = proxyHandler(deps, smartScopes);
  app.all("/:source", inboundAuth(), proxy);
  app.all("/:source/*", inboundAuth(), proxy);
  return app;
}
