import type { SourceConfig } from "../config/types.ts";
import { EdgeError } from "../errors.ts";
import type { EdgeBindings } from "../context.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { sourceClient } from "../upstream/source-client.ts";

/** The last reachability check of a source, as `/status` shows it. */
export interface Reachability {
  /**
   * The source answered below 500: a 401 or 404 still means its server is
   * there. A refused connection or a dead origin reaches a Worker as a 5xx
   * from the platform (Cloudflare's 52x; 500 under wrangler dev), so 5xx is
   * not reachable.
   */
  reachable: boolean;
  /** Its status for `GET <base>/metadata`. */
  status?: number;
  /** The stable error code when it did not answer (`upstream-timeout`, `upstream-unreachable`). */
  error?: string;
  ms: number;
  checkedAt: string;
}

/** A check is reused for a minute per isolate, so `/status` never hammers a source. */
const REACHABILITY_TTL_MS = 60_000;
/** A probe waits at most this long (or the source's `timeout`, if shorter). */
const PROBE_TIMEOUT_MS = 5_000;

const checks = new Map<string, { at: number; result: Reachability }>();

/**
 * A cheap probe: one `GET <base>/metadata`, no retry, with the source's extra
 * headers but no credentials (metadata is public in FHIR, and a probe must
 * not fetch tokens).
 */
async function probe(source: SourceConfig, env: EdgeBindings, deps: ForwardDeps, requestId: string): Promise<Reachability> {
  const started = deps.now();
  const checkedAt = new Date(started).toISOString();
  try {
    const { response } = await sourceClient(source, env, deps).send({
      method: "GET",
      path: "/metadata",
      requestId,
      headers: new Headers({ Accept: "application/fhir+json" }),
      anonymous: true,
      retryable: false,
      timeoutMs: Math.min(source.timeoutMs, PROBE_TIMEOUT_MS),
    });
    await response.body?.cancel();
    return { reachable: response.status < 500, status: response.status, ms: deps.now() - started, checkedAt };
  } catch (error) {
    return { reachable: false, error: error instanceof EdgeError ? error.code : "upstream-unreachable", ms: deps.now() - started, checkedAt };
  }
}

/**
 * The source's last reachability check, probing again when the cached one
 * (per isolate, per source and base URL) is older than {@link REACHABILITY_TTL_MS}.
 * The cache holds the result, never the pending probe: a promise waiting on
 * I/O belongs to the request that started it, and another request awaiting
 * it would hang once that request is done.
 */
export async function reachability(source: SourceConfig, env: EdgeBindings, deps: ForwardDeps, requestId: string): Promise<Reachability> {
  const key = `${source.name} ${source.baseUrl}`;
  const cached = checks.get(key);
  if (cached && deps.now() - cached.at < REACHABILITY_TTL_MS) return cached.result;
  const result = await probe(source, env, deps, requestId);
  if (checks.size > 256) checks.clear();
  checks.set(key, { at: deps.now(), result });
  return result;
}
