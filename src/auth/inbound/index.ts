import type { MiddlewareHandler } from "hono";
import { ConfigurationError } from "../../errors.ts";
import type { EdgeHonoEnv } from "../../context.ts";
import { apiKeyAuth } from "./api-key.ts";
import { jwtAuth } from "./jwt.ts";

const byConfig = new WeakMap<object, MiddlewareHandler<EdgeHonoEnv>>();

/**
 * Authenticates the caller per `PROXY_AUTH`; a broken setting fails closed.
 * The middleware is built once per configuration, not per request.
 */
export const inboundAuth = (): MiddlewareHandler<EdgeHonoEnv> => async (c, next) => {
  const config = c.get("config");
  const inbound = config.inbound;
  if (!inbound) {
    throw new ConfigurationError("auth-misconfigured", "The edge's client authentication (PROXY_AUTH) is misconfigured; see GET /status");
  }
  let handler = byConfig.get(inbound);
  if (!handler) {
    switch (inbound.mode) {
      case "none":
        handler = async (ctx, nxt) => {
          ctx.set("client", { name: "anonymous" });
          await nxt();
        };
        break;
      case "api-key":
        handler = apiKeyAuth(inbound.keys);
        break;
      case "jwt":
        handler = jwtAuth(inbound);
        break;
    }
    byConfig.set(inbound, handler);
  }
  return handler(c, next);
};
