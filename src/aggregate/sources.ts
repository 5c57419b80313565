import { err, ok, type Result } from "../result.ts";

/**
 * The sources one aggregate asks: those named by `sources=` in the order
 * given, or by default every declared source (misconfigured ones included,
 * as for the proxy, where any authenticated client may call any source and
 * a misconfigured one answers for itself: an outcome entry here, a 500
 * there). The contract has no per-client source list; were one added,
 * `allowed` would be narrowed by the caller, and cursors naming a source
 * outside it would be refused as foreign.
 * @returns an error naming the first source that does not exist for this client
 * @see docs/aggregate.md#get-aggregatetype
 */
export function selectSources(allowed: readonly string[], requested: readonly string[]): Result<string[], string> {
  if (requested.length === 0) return ok([...allowed]);
  const unknown = requested.find((name) => !allowed.includes(name));
  return unknown === undefined ? ok([...requested]) : err(unknown);
}
