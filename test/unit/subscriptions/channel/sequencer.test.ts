/**
 * The sequencer's contract (strict sequencing): numbers in, decisions out. `lastEvent` is the
 * highest event number up to which everything was delivered, recovered or given up.
 */
import { describe, expect, it } from "vitest";
import { countGap, decideEvents, decideRecovery, deliveryBackoff, keepIncomingHeld, pendingGap } from "../../../../src/subscriptions/channel/sequencer.ts";
import { sliceNotification } from "../../../../src/subscriptions/slice.ts";
import { eventNumbersOf, notification } from "../../../fixtures/notifications.ts";

describe("an incoming notification's events", () => {
  it("the next events are delivered", () => {
    expect(decideEvents(4, [5])).toEqual({ duplicates: [], deliver: { first: 5, last: 5, drop: [] } });
    expect(decideEvents(0, [1, 2, 3])).toEqual({ duplicates: [], deliver: { first: 1, last: 3, drop: [] } });
  });
  it("events at or below the last one are duplicates: acknowledged, nothing delivered", () => {
    expect(decideEvents(4, [3, 4])).toEqual({ duplicates: [3, 4] });
  });
  it("an overlap is delivered without what was seen", () => {
    expect(decideEvents(4, [4, 5, 6])).toEqual({ duplicates: [4], deliver: { first: 5, last: 6, drop: [4] } });
  });
  it("a jump is held, with the gap to recover first", () => {
    expect(decideEvents(4, [7, 8])).toEqual({ duplicates: [], hold: { first: 7, last: 8, drop: [] }, gap: { from: 5, to: 6 } });
  });
  it("a Bundle with a hole inside delivers up to the hole and holds the rest", () => {
    expect(decideEvents(4, [5, 7])).toEqual({ duplicates: [], deliver: { first: 5, last: 5, drop: [7] }, hold: { first: 7, last: 7, drop: [5] }, gap: { from: 6, to: 6 } });
  });
  it("order and repeats inside one Bundle do not matter", () => {
    expect(decideEvents(0, [2, 1, 2])).toEqual({ duplicates: [], deliver: { first: 1, last: 2, drop: [] } });
  });
});

describe("held notifications", () => {
  it("of two starting at the same event, the one reaching further is kept ([5] then [5, 6] keeps [5, 6])", () => {
    expect(keepIncomingHeld({ last: 5 }, { last: 6 })).toBe(true);
    expect(keepIncomingHeld({ last: 6 }, { last: 5 })).toBe(false);
    expect(keepIncomingHeld(undefined, { last: 5 })).toBe(true);
  });
  it("the missing range runs to the first held event, else to the highest count announced", () => {
    expect(pendingGap(4, 7, 10)).toEqual({ from: 5, to: 6 });
    expect(pendingGap(4, undefined, 6)).toEqual({ from: 5, to: 6 });
    expect(pendingGap(4, 5, undefined)).toBeUndefined();
    expect(pendingGap(4, undefined, 4)).toBeUndefined();
  });
});

describe("counts from heartbeats, handshakes and $status", () => {
  it("a count beyond the last event is a gap", () => {
    expect(countGap(4, 6)).toEqual({ from: 5, to: 6 });
    expect(countGap(4, 4)).toBeUndefined();
    expect(countGap(4, undefined)).toBeUndefined();
  });
});

describe("a $events answer, applied against the state at the time", () => {
  it("a full answer delivers the gap and moves past it", () => {
    expect(decideRecovery(1, { from: 2, to: 3 }, [2, 3])).toEqual({ deliver: { first: 2, last: 3, drop: [] }, unrecoverable: [], lastEvent: 3 });
  });
  it("a partial answer records every event it did not return as unrecoverable", () => {
    expect(decideRecovery(1, { from: 2, to: 6 }, [3, 5])).toEqual({
      deliver: { first: 3, last: 5, drop: [] },
      unrecoverable: [{ from: 2, to: 2 }, { from: 4, to: 4 }, { from: 6, to: 6 }],
      lastEvent: 6,
    });
  });
  it("no answer (unsupported, unreachable) records the whole gap", () => {
    expect(decideRecovery(1, { from: 2, to: 4 }, [])).toEqual({ unrecoverable: [{ from: 2, to: 4 }], lastEvent: 4 });
  });
  it("events that arrived during the request are not delivered twice, and the sequence never goes back", () => {
    expect(decideRecovery(3, { from: 2, to: 4 }, [2, 3, 4])).toEqual({ deliver: { first: 4, last: 4, drop: [2, 3] }, unrecoverable: [], lastEvent: 4 });
    expect(decideRecovery(9, { from: 2, to: 4 }, [2, 3, 4])).toEqual({ unrecoverable: [], lastEvent: 9 });
  });
  it("events returned outside the gap are sliced out", () => {
    expect(decideRecovery(1, { from: 2, to: 3 }, [1, 2, 3, 4])).toEqual({ deliver: { first: 2, last: 3, drop: [1, 4] }, unrecoverable: [], lastEvent: 3 });
  });
});

describe("webhook retry backoff", () => {
  it("starts about 1 s, doubles, with jitter between half and all of the step, capped", () => {
    const top = () => 0.999999;
    const bottom = () => 0;
    expect([1, 2, 3, 4, 5, 6].map((n) => deliveryBackoff(n, 30_000, top))).toEqual([1000, 2000, 4000, 8000, 16000, 30000]);
    expect(deliveryBackoff(1, 30_000, bottom)).toBe(500);
    expect(deliveryBackoff(9, 5_000, top)).toBe(5000);
  });
});

describe("slicing out events already delivered", () => {
  it.each(["R5", "R4B", "R4"] as const)("%s: keeps the other events and their entries", (format) => {
    const bundle = notification(format, "event-notification", { events: [4, 5, 6] });
    const sliced = sliceNotification(bundle, new Set([4]));
    expect(eventNumbersOf(sliced)).toEqual([5, 6]);
    expect((sliced.entry as Array<{ fullUrl: string }>).slice(1).map((e) => e.fullUrl)).toEqual(["https://example.org/fhir/Encounter/5", "https://example.org/fhir/Encounter/6"]);
  });
  it("returns the very same Bundle when nothing is dropped", () => {
    const bundle = notification("R5", "event-notification", { events: [1] });
    expect(sliceNotification(bundle, new Set())).toBe(bundle);
  });
});
