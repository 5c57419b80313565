import type { EdgeConfig } from "../config/edge-config.ts";
import type { ClientIdentity } from "../context.ts";
import { err, ok, type Result } from "../result.ts";

/**
 * The sources a client may aggregate over, in source order (by name): every
 * declared source, misconfigured ones included, as for the proxy, where any
 * authenticated client may call any source and a misconfigured one answers
 * for itself (an outcome entry here, a 500 there). The contract has no
 * per-client source list; were one added, it would be applied here, and
 * cursors naming a source outside it would be refused as foreign.
 * @see docs/aggregate.md#get-aggregatetype
 */
export function sourcesFor(config: EdgeConfig, _client: ClientIdentity): string[] {
  return declaredSources(config);
}

/** Every declared source's name (misconfigured ones included), by name. */
export function declaredSources(config: EdgeConfig): string[] {
  return [...config.sources.keys(), ...config.brokenSources.keys()].sort();
}

/**
 * The sources one aggregate asks: those named by `sources=` in the order
 * given, or by default every source the client may use.
 * @returns an error naming the first source that does not exist for this client
 */
export function selectSources(allowed: readonly string[], requested: readonly string[]): Result<string[], string> {
  if (requested.length === 0) return ok([...allowed]);
  const unknown = requested.find((name) => !allowed.includes(name));
  return unknown === undefined ? ok([...requested]) : err(unknown);
}
