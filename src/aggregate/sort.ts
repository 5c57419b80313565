import type { BundleEntry, Resource } from "../fhir/types.ts";

/** One key of `_sort`: a search parameter, ascending unless written `-name`. */
export interface SortKey {
  param: string;
  descending: boolean;
}

type SortValue = string | number | boolean;

/**
 * Parses `_sort` (R4: comma list, `-` for descending).
 * @see https://hl7.org/fhir/R4/search.html#sort
 */
export function parseSort(raw: string | null): SortKey[] {
  if (raw === null) return [];
  return raw
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "" && k !== "-")
    .map((k) => (k.startsWith("-") ? { param: k.slice(1), descending: true } : { param: k, descending: false }));
}

/**
 * `date` names a different root element per resource type; these are the
 * dateTime choices it covers (Observation, MedicationRequest, Condition,
 * Procedure, DiagnosticReport, Encounter has none on its root).
 */
const DATE_ELEMENTS = ["date", "effectiveDateTime", "effectiveInstant", "authoredOn", "recordedDate", "onsetDateTime", "performedDateTime", "occurrenceDateTime", "issued"];

/**
 * The value `param` sorts a resource by, when it is a primitive on the
 * resource root: `_id`, `_lastUpdated` (meta.lastUpdated), `date` (see
 * {@link DATE_ELEMENTS}), or the root element whose name is the parameter's
 * without hyphens, case-insensitively (`birthdate` -> `birthDate`, `status`).
 * @returns the value; undefined when the resource has none; null when the element is not a primitive (an array or object)
 */
export function sortValue(resource: Resource | undefined, param: string): SortValue | undefined | null {
  if (!resource) return undefined;
  if (param === "_id") return resource.id;
  if (param === "_lastUpdated") {
    const meta = resource.meta as { lastUpdated?: unknown } | undefined;
    return typeof meta?.lastUpdated === "string" ? meta.lastUpdated : undefined;
  }
  const wanted = param.replaceAll("-", "").toLowerCase();
  const names = param === "date" ? DATE_ELEMENTS : Object.keys(resource).filter((k) => k.toLowerCase() === wanted);
  for (const name of names) {
    const value = resource[name];
    if (value === undefined) continue;
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return value;
    return null;
  }
  return undefined;
}

const DATE = /^(\d{4})(-(\d{2})(-(\d{2})(T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** A FHIR date, dateTime or instant as milliseconds (partial dates at their start, UTC), else undefined. */
function dateMillis(text: string): number | undefined {
  const m = DATE.exec(text);
  if (!m) return undefined;
  const [, y, , mo = "01", , d = "01", time, hh = "00", mm = "00", , ss = "00", frac = "", tz = "Z"] = m;
  const iso = `${y}-${mo}-${d}T${hh}:${mm}:${ss}${frac}${time ? tz : "Z"}`;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

const TYPE_RANK: Record<string, number> = { boolean: 0, number: 1, string: 2 };

/** Orders two present values: booleans, numbers, dates by instant, other strings case-insensitively by code point. */
export function compareValues(a: SortValue, b: SortValue): number {
  if (typeof a !== typeof b) return TYPE_RANK[typeof a]! - TYPE_RANK[typeof b]!;
  if (typeof a === "number" || typeof a === "boolean") return Number(a) - Number(b);
  const sa = a as string;
  const sb = b as string;
  const da = dateMillis(sa);
  const db = dateMillis(sb);
  if (da !== undefined && db !== undefined && da !== db) return da - db;
  const la = sa.toLowerCase();
  const lb = sb.toLowerCase();
  return la < lb ? -1 : la > lb ? 1 : sa < sb ? -1 : sa > sb ? 1 : 0;
}

/**
 * The keys of `_sort` the edge can merge by, for these entries: the longest
 * leading run of keys whose values are primitives on the resource root, each
 * present on at least one entry. A key after the first it cannot merge by is
 * not used either, since it only orders within equal values of the earlier one.
 */
export function mergeableKeys(keys: readonly SortKey[], entries: readonly BundleEntry[]): SortKey[] {
  const usable: SortKey[] = [];
  for (const key of keys) {
    let present = false;
    for (const entry of entries) {
      const value = sortValue(entry.resource, key.param);
      if (value === null) return usable;
      if (value !== undefined) present = true;
    }
    if (!present) return usable;
    usable.push(key);
  }
  return usable;
}

/**
 * A comparator over entries for `keys`: a missing value sorts last in either
 * direction; 0 when every key ties (the merge then keeps source order).
 */
export function entryComparator(keys: readonly SortKey[]): (a: BundleEntry, b: BundleEntry) => number {
  return (a, b) => {
    for (const key of keys) {
      const va = sortValue(a.resource, key.param) ?? undefined;
      const vb = sortValue(b.resource, key.param) ?? undefined;
      if (va === undefined && vb === undefined) continue;
      if (va === undefined) return 1;
      if (vb === undefined) return -1;
      const c = compareValues(va, vb);
      if (c !== 0) return key.descending ? -c : c;
    }
    return 0;
  };
}
