import type { BundleEntry } from "../fhir/types.ts";
import { entryComparator, mergeableKeys, type SortKey } from "./sort.ts";

/** Where one source's results continue. */
export interface SourcePosition {
  source: string;
  /**
   * The page to read next, as the path and query after the source's FHIR
   * base (`/Patient?name=x`, or a next link's `/Patient?...&_offset=20`,
   * or `?_getpages=...`); null once the source's last page has been read.
   */
  at: string | null;
  /** Matches at the start of that page already returned on an earlier merged page. */
  skip: number;
  /** The source's `Bundle.total`, once it gave one. */
  total?: number;
}

/** One page a source answered, split for merging. */
export interface SourcePage {
  /** Entries with `search.mode` `match` (or none): what `_count` counts. */
  matches: BundleEntry[];
  /** `include` and `outcome` entries: they go with the matches of their page. */
  others: BundleEntry[];
  total?: number;
  /** The next page's position (see {@link SourcePosition.at}), or null on the last page. */
  next: string | null;
}

/** A source's part in one round: its position, and its page when it was asked and answered. */
export interface SourceRound {
  position: SourcePosition;
  page?: SourcePage;
}

export interface MergeOptions {
  /** The most matches on the merged page (`_count`), or null for no bound. */
  count: number | null;
  sort: readonly SortKey[];
}

export interface MergedEntry {
  source: string;
  entry: BundleEntry;
  /** A match (counted by `_count`), or an include/outcome that came with one. */
  match: boolean;
}

export interface MergeResult {
  /** The merged page: matches first (merged order), then the includes and outcomes that came with them, by source. */
  entries: MergedEntry[];
  /** Every source's position after this page, in the rounds' order. */
  positions: SourcePosition[];
  /** The keys of `_sort` actually merged by (a leading part of them, possibly none). */
  sortedBy: SortKey[];
}

/**
 * Merges one page of every source into one page of at most `count` matches
 * (pure: no I/O). What a source's page offers is its matches after `skip`.
 *
 * - With `_sort` keys the edge can compare (see {@link mergeableKeys}): a
 *   k-way merge by those keys, ties in source order. A source whose page is
 *   used up while it has more pages stops the merged page there, since its
 *   next match is unknown and might come first.
 * - Otherwise (no `_sort`, or keys it cannot merge): the sources take turns
 *   one match at a time in source order, so every source is on every page;
 *   the page lists each source's matches together, in source order, each in
 *   the order the source gave them.
 *
 * A source that was not asked or did not answer keeps its position, so
 * nothing is skipped; one that answered moves on by what was taken. Taken
 * together, pages return every match of every source exactly once.
 */
export function mergeRound(rounds: readonly SourceRound[], options: MergeOptions): MergeResult {
  const offered = rounds.map((r) => (r.page ? r.page.matches.slice(r.position.skip) : []));
  const taken = rounds.map(() => 0);
  const budget = options.count ?? Infinity;
  const order: number[] = [];
  const sortedBy = options.sort.length > 0 ? mergeableKeys(options.sort, offered.flat()) : [];

  if (sortedBy.length > 0) {
    const compare = entryComparator(sortedBy);
    while (order.length < budget) {
      let best = -1;
      let blocked = false;
      for (let i = 0; i < rounds.length; i++) {
        const page = rounds[i]!.page;
        if (!page) continue;
        if (taken[i]! >= offered[i]!.length) {
          if (page.next !== null) blocked = true;
          continue;
        }
        if (best === -1 || compare(offered[i]![taken[i]!]!, offered[best]![taken[best]!]!) < 0) best = i;
      }
      if (blocked || best === -1) break;
      order.push(best);
      taken[best]!++;
    }
  } else {
    let progress = true;
    while (order.length < budget && progress) {
      progress = false;
      for (let i = 0; i < rounds.length && order.length < budget; i++) {
        if (taken[i]! < offered[i]!.length) {
          order.push(i);
          taken[i]!++;
          progress = true;
        }
      }
    }
    order.sort((a, b) => a - b);
  }

  const cursorBySource = rounds.map(() => 0);
  const entries: MergedEntry[] = order.map((i) => ({ source: rounds[i]!.position.source, entry: offered[i]![cursorBySource[i]!++]!, match: true }));
  rounds.forEach((round, i) => {
    const page = round.page;
    if (!page) return;
    if (taken[i]! > 0 || (round.position.skip === 0 && page.matches.length === 0)) {
      for (const entry of page.others) entries.push({ source: round.position.source, entry, match: false });
    }
  });

  const positions = rounds.map((round, i): SourcePosition => {
    const { position, page } = round;
    if (!page) return position;
    const total = page.total ?? position.total;
    const consumed = position.skip + taken[i]!;
    const base = consumed >= page.matches.length ? { source: position.source, at: page.next, skip: 0 } : { source: position.source, at: position.at, skip: consumed };
    return total === undefined ? base : { ...base, total };
  });
  return { entries, positions, sortedBy };
}

/**
 * The aggregate's `Bundle.total`: the sum of the sources' totals when every
 * source has given one, else none (a partial sum would be a wrong count).
 * @see https://hl7.org/fhir/R4/bundle-definitions.html#Bundle.total
 */
export function sumOfTotals(positions: readonly SourcePosition[]): number | undefined {
  const totals = positions.map((p) => p.total);
  return totals.every((t): t is number => t !== undefined) ? totals.reduce((a, b) => a + b, 0) : undefined;
}
