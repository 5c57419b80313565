import type { SourceConfig } from "../../config/types.ts";
import type { EdgeBindings } from "../../context.ts";
import { staticCredentials, type UpstreamCredentials } from "./credentials.ts";
import { oauthCredentials } from "./oauth-credentials.ts";

export type { UpstreamCredentials } from "./credentials.ts";

const cache = new WeakMap<SourceConfig, UpstreamCredentials>();

/** The credentials of a source, built once per isolate and configuration. */
export function credentialsFor(source: SourceConfig, env: EdgeBindings, now: () => number = Date.now): UpstreamCredentials {
  let credentials = cache.get(source);
  if (!credentials) {
    credentials = staticCredentials(source) ?? oauthCredentials(source, env, now);
    cache.set(source, credentials);
  }
  return credentials;
}
