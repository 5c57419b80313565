import type { EdgeConfig } from "./config/edge-config.ts";

/** Who called the edge, as inbound auth established it. */
export interface ClientIdentity {
  /** The client name from `PROXY_API_KEYS`, or a JWT's `sub`. */
  name: string;
  /** SMART scopes granted, when the client authenticated with a JWT; undefined means unrestricted. */
  scopes?: readonly string[];
}

/** What middleware puts on the hono context for later handlers. */
export interface EdgeVariables {
  requestId: string;
  config: EdgeConfig;
  client: ClientIdentity;
  /**
   * Set when the console's session cookie, not a header, authenticated the
   * client: a browser sends a cookie by itself, so a route that acts on it
   * checks the request's `Origin` (see `fromEdgeOrigin`).
   */
  viaSession?: true;
  /** For the access log: the source and the route shape (`Patient/{id}`), never a raw path or query. */
  logSource?: string;
  logRoute?: string;
  logAttempts?: number;
  /**
   * For `ACCESS_LOG=errors`: the answer is 2xx but something went wrong on the
   * way (an upstream retry, an aggregate source that failed, a batch entry
   * that failed), so the request is logged too.
   */
  logIncident?: boolean;
}

export type EdgeBindings = Env & Record<string, unknown>;

declare global {
  /**
   * The Worker's bindings, generated into worker-configuration.d.ts by
   * `wrangler types`. Declared (empty) here too, so the published type
   * declarations also resolve in an app that has no `Env` of its own; an
   * app's own `Env` merges with it.
   */
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type
  interface Env {}
}

export interface EdgeHonoEnv {
  Bindings: EdgeBindings;
  Variables: EdgeVariables;
}
