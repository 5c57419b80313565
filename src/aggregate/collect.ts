import type { NextLinkRefusedError } from "../errors.ts";
import { mergeRound, sumOfTotals, type MergedEntry, type SourcePage, type SourcePosition, type SourceRound } from "./merge.ts";
import type { SortKey } from "./sort.ts";

/** One source's answer for the page at its position. */
export type PageResult = { ok: true; page: SourcePage; warning?: NextLinkRefusedError; attempts: number } | { ok: false; error: unknown; attempts: number };

/** Fetches the pages at these positions, in parallel; one result per position, in order. */
export type FetchPages = (positions: readonly SourcePosition[]) => Promise<PageResult[]>;

/** At most this many rounds of fetches make one merged page: the first, then refills of sources whose page ran out. */
export const MAX_FETCH_ROUNDS = 6;

export interface CollectedPage {
  /** Matches first (merged order), then includes and outcomes. */
  entries: MergedEntry[];
  positions: SourcePosition[];
  total?: number;
  /** Sources that did not answer the first round: each gets an outcome entry. */
  failures: Array<{ source: string; error: unknown }>;
  warnings: NextLinkRefusedError[];
  /** How many sources were asked in the first round, and how many answered. */
  asked: number;
  answered: number;
  attempts: number;
  /** Whether any source's page took more than one upstream attempt. */
  retried: boolean;
}

/**
 * Collects one merged page: asks every source with a position for its page,
 * merges (see {@link mergeRound}), and while the page has room and a source
 * used up its page and has another, fetches that next page and merges on,
 * so that a page is short only at the end or when a refill fails or time
 * runs out. Without `_count` a page is each source's page, in one round.
 * The I/O is `fetchPages`; what is merged, and in which order, is decided here.
 */
export async function collectPage(initial: readonly SourcePosition[], fetchPages: FetchPages, count: number | null, sort: readonly SortKey[]): Promise<CollectedPage> {
  let positions = [...initial];
  const pages = new Map<string, SourcePage>();
  const matches: MergedEntry[] = [];
  const others: MergedEntry[] = [];
  const failures: CollectedPage["failures"] = [];
  const warnings: NextLinkRefusedError[] = [];
  let keys = sort;
  let attempts = 0;
  let retried = false;
  let toFetch = positions.filter((p) => p.at !== null);
  const asked = toFetch.length;
  let answered = 0;

  for (let round = 0; round < MAX_FETCH_ROUNDS && toFetch.length > 0; round++) {
    const results = await fetchPages(toFetch);
    let refillFailed = false;
    results.forEach((result, k) => {
      const source = toFetch[k]!.source;
      attempts += result.attempts;
      if (result.attempts > 1) retried = true;
      if (result.ok) {
        pages.set(source, result.page);
        if (result.warning) warnings.push(result.warning);
        if (round === 0) answered++;
      } else if (round === 0) {
        failures.push({ source, error: result.error });
      } else {
        refillFailed = true;
      }
    });
    // A refill that failed leaves a source without its next page: merging on could put later matches before its own.
    if (refillFailed || (round === 0 && answered === 0)) break;

    const rounds: SourceRound[] = positions.map((position) => {
      const page = pages.get(position.source);
      return page ? { position, page } : { position };
    });
    const budget = count === null ? null : count - matches.length;
    const merged = mergeRound(rounds, { count: budget, sort: keys });
    if (round === 0) keys = merged.sortedBy;
    for (const entry of merged.entries) (entry.match ? matches : others).push(entry);
    const moved = rounds.filter((r, i) => r.page && merged.positions[i]!.at !== r.position.at);
    for (const r of moved) pages.delete(r.position.source);
    positions = merged.positions;
    if (count === null || matches.length >= count) break;
    toFetch = positions.filter((p) => p.at !== null && moved.some((r) => r.position.source === p.source));
  }

  if (keys.length === 0) {
    const order = new Map(initial.map((p, i) => [p.source, i]));
    matches.sort((a, b) => order.get(a.source)! - order.get(b.source)!);
  }
  const total = sumOfTotals(positions);
  return { entries: [...matches, ...others], positions, ...(total === undefined ? {} : { total }), failures, warnings, asked, answered, attempts, retried };
}
