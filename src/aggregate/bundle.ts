import type { Bundle, BundleEntry, OperationOutcome } from "../fhir/types.ts";
import type { MergedEntry } from "./merge.ts";

export interface SearchsetInput {
  id: string;
  /** The edge's root (`https://edge.example` or with its mount path), no trailing slash. */
  edgeRoot: string;
  selfUrl: string;
  nextUrl?: string;
  total?: number;
  entries: readonly MergedEntry[];
  /** One OperationOutcome per source that failed or timed out on this page, or whose paging stopped. */
  outcomes: readonly OperationOutcome[];
  lastUpdated: string;
}

/**
 * The edge URL of an entry at its source, `<edge>/<source>/<Type>/<id>`; for
 * a resource without an id, the (already rewritten) `fullUrl` it came with.
 */
export function edgeFullUrl(edgeRoot: string, source: string, entry: BundleEntry): string | undefined {
  const r = entry.resource;
  if (r && typeof r.resourceType === "string" && typeof r.id === "string" && r.id !== "") {
    return `${edgeRoot}/${source}/${r.resourceType}/${encodeURIComponent(r.id)}`;
  }
  return typeof entry.fullUrl === "string" ? entry.fullUrl : undefined;
}

/**
 * One merged page as a FHIR `searchset` Bundle (pure): entries as the
 * sources gave them (`search.mode` and `search.score` kept) with `fullUrl`
 * at the edge, then one `search.mode = outcome` entry per failed source.
 * `total` only when the caller knows it for every source.
 * @see https://hl7.org/fhir/R4/bundle.html#searchset
 */
export function buildSearchset(input: SearchsetInput): Bundle {
  const entry: BundleEntry[] = input.entries.map(({ source, entry: e }) => {
    const fullUrl = edgeFullUrl(input.edgeRoot, source, e);
    const { fullUrl: _old, ...rest } = e;
    return fullUrl === undefined ? rest : { fullUrl, ...rest };
  });
  for (const outcome of input.outcomes) entry.push({ resource: outcome, search: { mode: "outcome" } });
  return {
    resourceType: "Bundle",
    id: input.id,
    meta: { lastUpdated: input.lastUpdated },
    type: "searchset",
    ...(input.total === undefined ? {} : { total: input.total }),
    link: [{ relation: "self", url: input.selfUrl }, ...(input.nextUrl ? [{ relation: "next", url: input.nextUrl }] : [])],
    entry,
  };
}
