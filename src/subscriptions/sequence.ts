/**
 * How an incoming notification's events relate to what the channel has seen,
 * under `strict` sequencing (the IG's counters): `lastEvent` is the highest
 * event number up to which every event was received, recovered, or given up.
 */
export type EventIntake =
  /** Every event is at or below `lastEvent`: acknowledge, deliver nothing. */
  | { kind: "duplicate" }
  /** The events continue the sequence: deliver now. `seen` lists event numbers to slice out. */
  | { kind: "deliver"; first: number; last: number; seen: number[] }
  /** The events start past `lastEvent + 1`: hold them and recover the gap first. */
  | { kind: "hold"; first: number; last: number; gap: EventRange; seen: number[] };

export interface EventRange {
  from: number;
  to: number;
}

/**
 * Classifies the event numbers of one notification against `lastEvent`.
 * @see https://hl7.org/fhir/R5/subscriptions.html#events
 */
export function classifyEvents(lastEvent: number, eventNumbers: readonly number[]): EventIntake {
  const sorted = [...new Set(eventNumbers)].sort((a, b) => a - b);
  const fresh = sorted.filter((n) => n > lastEvent);
  const seen = sorted.filter((n) => n <= lastEvent);
  if (fresh.length === 0) return { kind: "duplicate" };
  const first = fresh[0]!;
  const last = fresh[fresh.length - 1]!;
  if (first === lastEvent + 1) return { kind: "deliver", first, last, seen };
  return { kind: "hold", first, last, gap: { from: lastEvent + 1, to: first - 1 }, seen };
}

/**
 * A heartbeat's (or `$status`'s) `eventsSinceSubscriptionStart` beyond
 * `lastEvent` means events were sent that never arrived.
 */
export function countGap(lastEvent: number, eventsSinceSubscriptionStart: number | undefined): EventRange | undefined {
  if (eventsSinceSubscriptionStart === undefined || eventsSinceSubscriptionStart <= lastEvent) return undefined;
  return { from: lastEvent + 1, to: eventsSinceSubscriptionStart };
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
