import { err, ok, type Result } from "../result.ts";

/** A new aggregate search, as the client asked for it. */
export interface AggregateSearch {
  /** Sources named by `sources=` (comma lists and repeats), in order, without repeats; empty when not given. */
  sources: string[];
  /** The query sent to every source: the client's, with `sources` taken out, otherwise byte for byte; `""` or `?...`. */
  search: string;
  /** `_count`: the most matches in one merged page; null when not given. */
  count: number | null;
  /** `_sort` as given, or null. */
  sort: string | null;
}

export type AggregateQuery = { kind: "search"; search: AggregateSearch } | { kind: "cursor"; cursor: string };

export type AggregateQueryProblem =
  | { reason: "invalid-count"; message: string }
  | { reason: "format-not-supported"; message: string }
  | { reason: "cursor-with-search"; message: string };

/** Parameters the edge reads itself and never sends to a source. */
const SOURCES = "sources";
const CURSOR = "_cursor";
const JSON_FORMATS = new Set(["json", "application/json", "application/fhir+json"]);

function decodePair(part: string): [string, string] {
  const [pair] = new URLSearchParams(part);
  return pair ?? ["", ""];
}

/**
 * Reads the query of `GET /aggregate/:resourceType`. `sources` picks the
 * sources; `_cursor` continues a paged aggregate and then stands alone
 * (besides `_format`/`_pretty`): the cursor carries the whole search, so
 * nothing may be added to it. Every other parameter is the search, kept as
 * the client wrote it. `_format` may only ask for JSON, since the edge builds
 * the Bundle itself.
 * @param rawSearch the raw query string with its `?`, or `""`
 * @see docs/aggregate.md
 */
export function readAggregateQuery(rawSearch: string): Result<AggregateQuery, AggregateQueryProblem> {
  const parts = rawSearch.replace(/^\?/, "").split("&").filter((p) => p !== "");
  const sources: string[] = [];
  const kept: string[] = [];
  let cursor: string | undefined;
  let count: number | null = null;
  let sort: string | null = null;
  const others: string[] = [];
  for (const part of parts) {
    const [name, value] = decodePair(part);
    if (name === SOURCES) {
      for (const s of value.split(",")) {
        const trimmed = s.trim();
        if (trimmed !== "" && !sources.includes(trimmed)) sources.push(trimmed);
      }
      continue;
    }
    if (name === CURSOR) {
      cursor = value;
      continue;
    }
    kept.push(part);
    if (name === "_format") {
      if (!JSON_FORMATS.has(value.trim().toLowerCase())) {
        return err({ reason: "format-not-supported", message: "The aggregate is answered in JSON only (_format=json); XML is available per source" });
      }
      continue;
    }
    if (name === "_pretty") continue;
    others.push(name);
    if (name === "_count" && count === null) {
      if (!/^\d{1,9}$/.test(value)) return err({ reason: "invalid-count", message: "_count must be a whole number, 0 or more" });
      count = Number(value);
    } else if (name === "_sort" && sort === null) {
      sort = value;
    }
  }
  if (cursor !== undefined) {
    if (sources.length > 0 || others.length > 0) {
      return err({ reason: "cursor-with-search", message: "A _cursor carries the whole search: send it alone, as the next link gives it" });
    }
    return ok({ kind: "cursor", cursor });
  }
  return ok({ kind: "search", search: { sources, search: kept.length > 0 ? `?${kept.join("&")}` : "", count, sort } });
}
