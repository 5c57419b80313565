import type { SourceConfig } from "../config/types.ts";
import type { Bundle, BundleEntry, OperationOutcomeIssue } from "../fhir/types.ts";
import { err, ok, type Result } from "../result.ts";
import type { SourcePage } from "./merge.ts";

/**
 * A position (see `SourcePosition.at`) from a URL: what follows the source's
 * base when `url` starts with it at a path boundary, else undefined.
 */
export function positionFromUrl(url: string, base: string): string | undefined {
  if (!url.startsWith(base)) return undefined;
  const rest = url.slice(base.length);
  return rest === "" || rest.startsWith("/") || rest.startsWith("?") ? rest : undefined;
}

/** Splits a position into the path (`""` or `/...`) and the query (`""` or `?...`) that `resolveSourcePath` takes. */
export function splitPosition(at: string): { rest: string; search: string } {
  const q = at.indexOf("?");
  return q === -1 ? { rest: at, search: "" } : { rest: at.slice(0, q), search: at.slice(q) };
}

export interface ReadPage {
  page: SourcePage;
  /** The source's next link led off its base: its remaining pages are not followed. */
  nextRefused: boolean;
}

/**
 * Reads one source's searchset page (its text already rewritten to the
 * edge), pure. Its next link becomes a position relative to the source's
 * base, whether the source wrote it absolute (now the edge's URL for the
 * source) or relative (resolved against the page's upstream URL). A next link
 * anywhere else is never followed: the source then ends there, and says so.
 * @param edgeSourceBase `<edge>/<source>`, what the source's base was rewritten to
 * @param pageUrl the upstream URL the page was fetched from
 */
export function readSearchPage(text: string, source: SourceConfig, edgeSourceBase: string, pageUrl: string): Result<ReadPage, string> {
  let bundle: Bundle;
  try {
    bundle = JSON.parse(text) as Bundle;
  } catch {
    return err("is not JSON");
  }
  if (bundle === null || typeof bundle !== "object" || bundle.resourceType !== "Bundle" || bundle.type !== "searchset") {
    return err("is not a searchset Bundle");
  }
  const matches: BundleEntry[] = [];
  const others: BundleEntry[] = [];
  for (const entry of Array.isArray(bundle.entry) ? bundle.entry : []) {
    const mode = entry?.search?.mode;
    (mode === undefined || mode === "match" ? matches : others).push(entry);
  }
  const link = Array.isArray(bundle.link) ? bundle.link.find((l) => l?.relation === "next")?.url : undefined;
  let next: string | null = null;
  let nextRefused = false;
  if (typeof link === "string" && link !== "") {
    let at = positionFromUrl(link, edgeSourceBase);
    if (at === undefined && !/^[a-z][a-z0-9+.-]*:/i.test(link)) {
      try {
        at = positionFromUrl(new URL(link, pageUrl).href, source.baseUrl);
      } catch {
        at = undefined;
      }
    }
    if (at === undefined) nextRefused = true;
    else next = at;
  }
  const total = typeof bundle.total === "number" && Number.isInteger(bundle.total) && bundle.total >= 0 ? bundle.total : undefined;
  return ok({ page: { matches, others, next, ...(total === undefined ? {} : { total }) }, nextRefused });
}

/** The issues of an upstream's OperationOutcome body, for reporting its failure; none when the body is anything else. */
export function upstreamIssues(text: string): OperationOutcomeIssue[] {
  try {
    const body = JSON.parse(text) as { resourceType?: unknown; issue?: unknown };
    if (body?.resourceType === "OperationOutcome" && Array.isArray(body.issue)) return body.issue.slice(0, 10) as OperationOutcomeIssue[];
  } catch {
    // not JSON
  }
  return [];
}
