import { Hono } from "hono";
import { requireAdmin } from "./admin/require-admin.ts";
import { statusHandler } from "./admin/status.ts";
import { consoleGate, liveFragmentHandler, signInFormHandler, signInHandler, signOutHandler } from "./admin/console/routes.tsx";
import { sessionOrInbound } from "./auth/inbound/session-cookie.ts";
import { aggregateBatchHandler } from "./aggregate/batch-handler.ts";
import type { AggregateHandlers } from "./aggregate/custom.ts";
import { aggregateSearchHandler, type AggregateRouteOptions } from "./aggregate/search-handler.ts";
import { smartScopes } from "./auth/inbound/authorize.ts";
import { inboundAuth } from "./auth/inbound/index.ts";
import { bulkHandler } from "./bulk/route.ts";
import { jwksHandler } from "./auth/upstream/jwks-route.ts";
import type { EdgeHonoEnv } from "./context.ts";
import { EdgeError, NotFoundError, renderError } from "./errors.ts";
import { handlersByType } from "./fhir/resource-type.ts";
import { edgeMetadataHandler } from "./metadata/handler.ts";
import { sourceMetadataHandler, smartConfigurationHandler } from "./proxy/discovery.ts";
import { defaultDeps, type ForwardDeps } from "./upstream/forward.ts";
import { proxyHandler } from "./proxy/handler.ts";
import { rateLimit } from "./protection/rate-limit.ts";
import { createProtection } from "./protection/source-guard.ts";
import { requestMiddleware } from "./request-middleware.ts";
import { ROUTES } from "./routes.ts";
import { compileTransforms, type TransformHandlers } from "./transform/transforms.ts";
import { registerHandler, replayHandler } from "./subscriptions/admin-routes.ts";
import { webhookHandler } from "./subscriptions/webhook-route.ts";
import { inboxHandler } from "./subscriptions/ws-route.ts";

export interface EdgeOptions {
  /** The I/O used for upstream calls: override in tests, or to instrument fetch. */
  deps?: Partial<ForwardDeps>;
  /**
   * Transform handlers by resource type: each gets every resource of its type
   * coming back from a source (a read, a search's entries, an aggregate's
   * entries, a batch's) and returns the resource to send on.
   */
  transforms?: TransformHandlers;
  /** Custom aggregate handlers by resource type: each replaces the built-in merge of `GET /aggregate/<Type>`. */
  aggregates?: AggregateHandlers;
}

/**
 * Builds the fhir-edge hono app. Read top to bottom, this is where every
 * request goes; the deployable Worker is this factory with its defaults.
 * Mount it in an app of your own with `parent.route("/fhir", createEdge())`:
 * every URL the edge writes keeps the mount path.
 * @see docs/contract.md#3-routes
 */
export function createEdge(options: EdgeOptions = {}): Hono<EdgeHonoEnv> {
  // One set of circuit breakers, holds and retry budgets per app: per isolate for the deployed Worker.
  const deps: ForwardDeps = { ...defaultDeps, protection: createProtection(), ...options.deps };
  const transformer = compileTransforms(options.transforms);
  const aggregate: AggregateRouteOptions = { deps, authorize: smartScopes, transformer, custom: handlersByType("aggregates", options.aggregates) };
  const app = new Hono<EdgeHonoEnv>();

  app.use("*", requestMiddleware());
  app.onError((error, c) => {
    if (!(error instanceof EdgeError)) {
      // The error's class and where it was thrown; never its message, which may quote a body.
      const at = error instanceof Error ? error.stack?.split("\n").find((l) => l.trim().startsWith("at "))?.trim() : undefined;
      console.error(JSON.stringify({ msg: "unhandled error", requestId: c.get("requestId"), error: error instanceof Error ? error.name : typeof error, at }));
    }
    return renderError(error, c.get("requestId") ?? crypto.randomUUID());
  });
  app.notFound((c) => renderError(new NotFoundError("route-not-found", "No such route on this edge"), c.get("requestId")));

  // Operations (admin clients only): JSON, or the console's page to a browser, which may
  // sign in with a session cookie; the edge's own statement and public keys (public).
  const gate = consoleGate(deps.now);
  app.get(ROUTES.root, gate, rateLimit("admin"), statusHandler(deps));
  app.get(ROUTES.status, gate, rateLimit("admin"), statusHandler(deps));
  app.get(ROUTES.consoleSignIn, signInFormHandler);
  app.post(ROUTES.consoleSignIn, rateLimit("sign-in"), signInHandler(deps.now));
  app.post(ROUTES.consoleSignOut, signOutHandler);
  app.get(ROUTES.consoleLive, sessionOrInbound(deps.now), requireAdmin(), rateLimit("admin"), liveFragmentHandler(deps));
  app.get(ROUTES.edgeMetadata, edgeMetadataHandler(deps.now));
  app.get(ROUTES.jwks, jwksHandler);
  app.post(ROUTES.register, inboundAuth(), requireAdmin(), rateLimit("admin"), registerHandler(deps));
  app.get(ROUTES.replay, sessionOrInbound(deps.now), requireAdmin(), rateLimit("admin"), replayHandler);

  // Subscription notifications in: authenticated by the channel's own secret.
  app.post(ROUTES.webhook, rateLimit("webhooks"), webhookHandler);
  // A channel's notifications out over a WebSocket: admin clients and the channel's subscribers.
  // A browser may use the console's session cookie (checked against Origin in the handler).
  app.get(ROUTES.inbox, sessionOrInbound(deps.now), rateLimit("client"), inboxHandler);

  // One search across sources (GET), and a batch whose entries name their sources (POST).
  app.all(ROUTES.aggregateSearch, inboundAuth(), rateLimit("client"), aggregateSearchHandler(aggregate));
  app.all(ROUTES.aggregateBatch, inboundAuth(), rateLimit("client"), aggregateBatchHandler(aggregate));
  app.all("/aggregate/*", () => {
    throw new NotFoundError("route-not-found", "The aggregate routes are GET /aggregate/<ResourceType> and POST /aggregate");
  });

  // Discovery per source: public, and describing the edge's security.
  app.get("/:source/metadata", sourceMetadataHandler(deps));
  app.get("/:source/.well-known/smart-configuration", smartConfigurationHandler);

  // Bulk Data locations (status, manifest pages, files) the edge signed for the client that kicked off an export.
  app.all("/:source/$bulk/:token", inboundAuth(), rateLimit("client"), bulkHandler(deps));

  // Any FHIR interaction, proxied.
  const proxy = proxyHandler(deps, smartScopes, transformer);
  app.all("/:source", inboundAuth(), rateLimit("client"), proxy);
  app.all("/:source/*", inboundAuth(), rateLimit("client"), proxy);
  return app;
}
