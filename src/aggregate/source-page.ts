import type { EdgeConfig } from "../config/edge-config.ts";
import { InvalidRequestError, NextLinkRefusedError, UpstreamErrorStatusError, UpstreamUnavailableError } from "../errors.ts";
import type { Bundle } from "../fhir/types.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { rewriterFor } from "../upstream/rewrite-urls.ts";
import { requireSource } from "../config/lookup.ts";
import { resolveSourcePath } from "../upstream/source-path.ts";
import { getFromSource, type FanOutContext } from "./fan-out.ts";
import type { PageResult } from "./collect.ts";
import type { SourcePosition } from "./merge.ts";
import { readSearchPage, splitPosition, upstreamIssues } from "./page.ts";


/**
 * The upstream URL of a position at a source, checked by the proxy's own path
 * rules so that it stays under the source's configured origin and base.
 * @returns undefined when the position could leave the base
 */
export function positionUrl(config: EdgeConfig, sourceName: string, at: string): string | undefined {
  const source = config.sources.get(sourceName);
  if (!source) return undefined;
  const { rest, search } = splitPosition(at);
  const resolved = resolveSourcePath(source, rest, search);
  return resolved.ok ? resolved.value.url : undefined;
}

/**
 * Fetches the page at a source's position and reads it as a searchset page
 * whose URLs point at the edge. Never rejects: a misconfigured source, a
 * position that would leave the source's base, an unreachable or timed-out
 * source, a non-2xx answer or a body that is not a searchset Bundle all come
 * back as the error to report for that source.
 */
export async function fetchSourcePage(config: EdgeConfig, position: SourcePosition, edgeRoot: string, ctx: FanOutContext, deps: ForwardDeps): Promise<PageResult> {
  let attempts = 0;
  try {
    const source = requireSource(config, position.source);
    const url = position.at === null ? undefined : positionUrl(config, source.name, position.at);
    if (url === undefined || position.at === null) throw new UpstreamUnavailableError("unsafe-position", `Source ${source.name}: the page position leaves the source's base`);
    const answer = await getFromSource(source, position.at, ctx, deps);
    attempts = answer.attempts;
    if (answer.status < 200 || answer.status > 299) return { ok: false, error: new UpstreamErrorStatusError(source.name, answer.status, upstreamIssues(answer.text)), attempts };
    const edgeSourceBase = `${edgeRoot}/${source.name}`;
    const read = readSearchPage(rewriterFor(source, edgeSourceBase).rewriteText(answer.text), source, edgeSourceBase, url);
    if (!read.ok) return { ok: false, error: new UpstreamUnavailableError("upstream-malformed", `Source ${source.name}'s answer ${read.error}`), attempts };
    return { ok: true, page: read.value.page, attempts, ...(read.value.nextRefused ? { warning: new NextLinkRefusedError(source.name) } : {}) };
  } catch (error) {
    return { ok: false, error, attempts };
  }
}

/**
 * Fetches `path` (path and query after the source's base) from one source as
 * a Bundle whose URLs point at the edge (for custom aggregate handlers).
 * @throws an EdgeError naming the source when it fails or answers anything but a Bundle
 */
export async function fetchSourceBundle(config: EdgeConfig, sourceName: string, path: string, edgeRoot: string, ctx: FanOutContext, deps: ForwardDeps): Promise<Bundle> {
  const source = requireSource(config, sourceName);
  if (positionUrl(config, sourceName, path) === undefined) throw new InvalidRequestError("unsafe-path", `The search at source ${sourceName} would leave the source's base`);
  const answer = await getFromSource(source, path, ctx, deps);
  if (answer.status < 200 || answer.status > 299) throw new UpstreamErrorStatusError(source.name, answer.status, upstreamIssues(answer.text));
  let bundle: Bundle;
  try {
    bundle = JSON.parse(rewriterFor(source, `${edgeRoot}/${source.name}`).rewriteText(answer.text)) as Bundle;
  } catch {
    throw new UpstreamUnavailableError("upstream-malformed", `Source ${source.name}'s answer is not JSON`);
  }
  if (bundle?.resourceType !== "Bundle") throw new UpstreamUnavailableError("upstream-malformed", `Source ${source.name}'s answer is not a Bundle`);
  return bundle;
}
