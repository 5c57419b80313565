import type { Context, MiddlewareHandler } from "hono";
import { edgeConfig } from "./config/edge-config.ts";
import type { EdgeHonoEnv } from "./context.ts";

const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * First middleware on every request: the request id (the client's
 * `X-Request-Id` when it is a plain token, else a new UUID), the
 * configuration (parsed once per isolate), and one access-log line after the
 * response (every request, or per `ACCESS_LOG` only failed ones and those
 * with an incident):
 * route shape, status, timing, source, request id. Never a query string,
 * body, token or secret.
 */
export const requestMiddleware = (): MiddlewareHandler<EdgeHonoEnv> => async (c, next) => {
  const started = Date.now();
  const given = c.req.header("X-Request-Id");
  const requestId = given && CLIENT_REQUEST_ID.test(given) ? given : crypto.randomUUID();
  c.set("requestId", requestId);
  c.set("config", edgeConfig(c.env ?? {}));
  try {
    await next();
  } finally {
    // The proxy and the error renderer set it already; setting it on a finished
    // response makes hono copy the whole Response, on every request.
    if (c.res.headers.get("X-Request-Id") !== requestId) c.header("X-Request-Id", requestId);
    const mode = c.get("config").accessLog;
    if (mode === "all" || (mode === "errors" && (c.res.status >= 400 || c.get("logIncident") === true))) logRequest(c, requestId, started);
  }
};

/** The access-log line: route shape, status, timing, source, request id. */
function logRequest(c: Context<EdgeHonoEnv>, requestId: string, started: number): void {
  console.log(
    JSON.stringify({
      msg: "request",
      requestId,
      method: c.req.method,
      source: c.get("logSource"),
      route: c.get("logRoute") ?? "edge",
      status: c.res.status,
      attempts: c.get("logAttempts"),
      ms: Date.now() - started,
    }),
  );
}
