import type { MiddlewareHandler } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { ForbiddenError } from "../errors.ts";

/** The admin routes (`/status`, `/admin/...`): only clients named in `PROXY_ADMIN_CLIENTS`. */
export const requireAdmin = (): MiddlewareHandler<EdgeHonoEnv> => async (c, next) => {
  const client = c.get("client");
  const config = c.get("config");
  if (!config.adminClients.has(client.name)) {
    throw new ForbiddenError("admin-only", `Client ${client.name} is not in PROXY_ADMIN_CLIENTS`);
  }
  await next();
};
