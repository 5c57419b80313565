import type { SourceConfig } from "../../config/types.ts";
import { ConfigurationError } from "../../errors.ts";
import type { EdgeBindings } from "../../context.ts";
import { staticCredentials, type UpstreamCredentials } from "./credentials.ts";

export type { UpstreamCredentials } from "./credentials.ts";

const cache = new WeakMap<SourceConfig, UpstreamCredentials>();

/** The credentials of a source, built once per isolate and configuration. */
export function credentialsFor(source: SourceConfig, _env: EdgeBindings): UpstreamCredentials {
  let credentials = cache.get(source);
  if (!credentials) {
    credentials = staticCredentials(source);
    if (!credentials) {
      throw new ConfigurationError("auth-not-available", `Source ${source.name}: ${source.auth.kind} is not available in this build`, ["auth"]);
    }
    cache.set(source, credentials);
  }
  return credentials;
}
