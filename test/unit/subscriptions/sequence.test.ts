import { describe, expect, it } from "vitest";
import { classifyEvents, countGap, deliveryBackoff } from "../../../src/subscriptions/sequence.ts";
import { sliceNotification } from "../../../src/subscriptions/slice.ts";
import { eventNumbersOf, notification } from "../../fixtures/notifications.ts";

describe("deciding a sequence gap (strict sequencing)", () => {
  it("the next event is delivered", () => {
    expect(classifyEvents(4, [5])).toEqual({ kind: "deliver", first: 5, last: 5, seen: [] });
    expect(classifyEvents(0, [1, 2, 3])).toEqual({ kind: "deliver", first: 1, last: 3, seen: [] });
  });
  it("events at or below the last one are duplicates", () => {
    expect(classifyEvents(4, [3, 4])).toEqual({ kind: "duplicate" });
  });
  it("an overlap is delivered without what was seen", () => {
    expect(classifyEvents(4, [4, 5, 6])).toEqual({ kind: "deliver", first: 5, last: 6, seen: [4] });
  });
  it("a jump is held, with the gap to recover", () => {
    expect(classifyEvents(4, [7, 8])).toEqual({ kind: "hold", first: 7, last: 8, gap: { from: 5, to: 6 }, seen: [] });
  });
  it("a heartbeat count beyond the last event is a gap", () => {
    expect(countGap(4, 6)).toEqual({ from: 5, to: 6 });
    expect(countGap(4, 4)).toBeUndefined();
    expect(countGap(4, undefined)).toBeUndefined();
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
