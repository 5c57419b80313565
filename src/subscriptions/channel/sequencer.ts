/**
 * The channel's sequencer: pure decisions about event numbers under `strict`
 * sequencing (the IG's counters). Numbers in, decisions out; no storage, no
 * clock. `lastEvent` is the highest event number up to which every event was
 * delivered, recovered, or recorded as a gap.
 * @see https://hl7.org/fhir/R5/subscriptions.html#events
 */

export interface EventRange {
  from: number;
  to: number;
}

/** A consecutive part of one notification Bundle: its first and last event, and the event numbers to slice out of the Bundle for it. */
export interface BundlePart {
  first: number;
  last: number;
  drop: number[];
}

/** What becomes of one notification's events. */
export interface EventDecision {
  /** At or below `lastEvent`: acknowledged, not sent again. */
  duplicates: number[];
  /** The events that continue the sequence: delivered now. */
  deliver?: BundlePart;
  /** The events past a missing one: held until the events before them are in. */
  hold?: BundlePart;
  /** The missing events before the held part. */
  gap?: EventRange;
}

const sortedUnique = (numbers: readonly number[]) => [...new Set(numbers)].sort((a, b) => a - b);

/**
 * Splits one notification's event numbers against `lastEvent`: what was seen,
 * what continues the sequence (delivered), and what starts past a missing
 * event (held, with the gap to recover first). A Bundle with a hole inside
 * (events 5 and 7) delivers up to the hole and holds the rest.
 */
export function decideEvents(lastEvent: number, eventNumbers: readonly number[]): EventDecision {
  const numbers = sortedUnique(eventNumbers);
  const duplicates = numbers.filter((n) => n <= lastEvent);
  let runEnd = lastEvent;
  for (const n of numbers) if (n === runEnd + 1) runEnd = n;
  const rest = numbers.filter((n) => n > runEnd);
  const decision: EventDecision = { duplicates };
  if (runEnd > lastEvent) decision.deliver = { first: lastEvent + 1, last: runEnd, drop: numbers.filter((n) => n <= lastEvent || n > runEnd) };
  if (rest.length > 0) {
    const first = rest[0]!;
    decision.hold = { first, last: rest[rest.length - 1]!, drop: numbers.filter((n) => n < first) };
    decision.gap = { from: runEnd + 1, to: first - 1 };
  }
  return decision;
}

/**
 * Two held Bundles starting at the same event: keep the one that reaches
 * further (a held [5] and a later [5, 6] keep [5, 6]; event 6 is not lost).
 */
export function keepIncomingHeld(existing: { last: number } | undefined, incoming: { last: number }): boolean {
  return existing === undefined || incoming.last > existing.last;
}

/**
 * A heartbeat's, handshake's or `$status`'s `eventsSinceSubscriptionStart`
 * beyond `lastEvent` means events were sent that never arrived.
 * @see https://hl7.org/fhir/R5/subscriptionstatus-definitions.html#SubscriptionStatus.eventsSinceSubscriptionStart
 */
export function countGap(lastEvent: number, eventsSinceSubscriptionStart: number | undefined): EventRange | undefined {
  if (eventsSinceSubscriptionStart === undefined || eventsSinceSubscriptionStart <= lastEvent) return undefined;
  return { from: lastEvent + 1, to: eventsSinceSubscriptionStart };
}

/**
 * The missing range after `lastEvent`: up to the first held event, or else up
 * to the highest count a heartbeat (or `$status`) announced.
 */
export function pendingGap(lastEvent: number, firstHeld: number | undefined, announced: number | undefined): EventRange | undefined {
  const to = firstHeld !== undefined ? firstHeld - 1 : (announced ?? lastEvent);
  return to > lastEvent ? { from: lastEvent + 1, to } : undefined;
}

/** What to do with a `$events` answer, decided against `lastEvent` as it is when the answer is applied. */
export interface RecoveryDecision {
  /** The returned events still missing: delivered as one Bundle. */
  deliver?: BundlePart;
  /** Events of the gap the answer did not return: recorded, given up. */
  unrecoverable: EventRange[];
  /** `lastEvent` after applying. Never below the one given. */
  lastEvent: number;
}

/**
 * Applies a `$events` answer for `gap`. Events that arrived while the request
 * was out are not delivered twice; the sequence never goes backwards; what
 * the source did not return (a partial answer, or none) is unrecoverable.
 * @see https://hl7.org/fhir/R5/subscription-operation-events.html
 */
export function decideRecovery(lastEvent: number, gap: EventRange, returned: readonly number[]): RecoveryDecision {
  const from = Math.max(gap.from, lastEvent + 1);
  if (from > gap.to) return { unrecoverable: [], lastEvent };
  const all = sortedUnique(returned);
  const wanted = all.filter((n) => n >= from && n <= gap.to);
  const unrecoverable: EventRange[] = [];
  let next = from;
  for (const n of [...wanted, gap.to + 1]) {
    if (n > next) unrecoverable.push({ from: next, to: n - 1 });
    next = n + 1;
  }
  const deliver =
    wanted.length > 0 ? { first: wanted[0]!, last: wanted[wanted.length - 1]!, drop: all.filter((n) => n < from || n > gap.to) } : undefined;
  return { ...(deliver ? { deliver } : {}), unrecoverable, lastEvent: gap.to };
}

/**
 * Exponential backoff with jitter for a failing webhook target: about 1 s,
 * doubling, capped (30 s unless the target sets `maxBackoff`). The jitter
 * (between 50% and 100% of the step) keeps retries of many channels apart.
 * @returns milliseconds
 */
export function deliveryBackoff(failures: number, capMs: number, random: () => number): number {
  const step = Math.min(capMs, 1000 * 2 ** Math.max(0, failures - 1));
  return Math.round(step * (0.5 + random() / 2));
}
