import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEventNumber, parseNotification } from "../../../src/subscriptions/notification.ts";
import { sliceNotification } from "../../../src/subscriptions/slice.ts";
import { eventNumbersOf, notification, type Format } from "../../fixtures/notifications.ts";

type Json = Record<string, any>;

/** A notification whose first event's number is replaced by `raw` (as sent on the wire, any JSON value). */
function withFirstNumber(format: Format, raw: unknown, events = [1, 2]): Json {
  const bundle = notification(format, "event-notification", { events }) as Json;
  const status = bundle.entry[0].resource;
  if (format === "R4") {
    const event = status.parameter.find((p: Json) => p.name === "notification-event");
    event.part[0] = { name: "event-number", ...(typeof raw === "number" ? { valueDecimal: raw } : { valueString: raw }) };
  } else status.notificationEvent[0].eventNumber = raw;
  return bundle;
}

const eventCount = (bundle: Json) => {
  const status = bundle.entry[0].resource;
  return status.resourceType === "Parameters" ? status.parameter.filter((p: Json) => p.name === "notification-event").length : (status.notificationEvent ?? []).length;
};

describe("sliceNotification drops the events already delivered", () => {
  it.each(["R5", "R4B", "R4"] as const)("%s: keeps the other events and the entries of their foci only", (format) => {
    const sliced = sliceNotification(notification(format, "event-notification", { events: [1, 2, 3] }), new Set([1, 2]));
    expect(eventNumbersOf(sliced)).toEqual([3]);
    expect((sliced.entry as Json[]).slice(1).map((e) => e.fullUrl)).toEqual(["https://example.org/fhir/Encounter/3"]);
    expect(parseNotification(sliced)).toMatchObject({ ok: true, value: { events: [{ eventNumber: 3 }] } });
  });

  it("an empty drop set returns the Bundle unchanged", () => {
    const bundle = notification("R5", "event-notification", { events: [4, 5] });
    expect(sliceNotification(bundle, new Set())).toBe(bundle);
  });
});

describe("one parser: slice reads event numbers exactly as parseNotification does", () => {
  // 9007199254740993 is 2^53 + 1: Number() rounds it to 2^53, which the parser refuses rather than rounds.
  it.each(["R5", "R4B", "R4"] as const)("%s: an integer64 past 2^53 - 1 is refused by the parser and never matches a number to drop", (format) => {
    const bundle = withFirstNumber(format, "9007199254740993");
    expect(parseNotification(bundle)).toEqual({ ok: false, error: "invalid-event-number" });
    const sliced = sliceNotification(bundle, new Set([9007199254740992, 2]));
    expect(eventCount(sliced)).toBe(1);
    expect(eventCount(sliced)).toBe(eventCount(bundle) - 1);
  });

  it("R4 backport: a decimal event-number (2.5) is not a number to slice", () => {
    const bundle = withFirstNumber("R4", 2.5);
    expect(parseNotification(bundle)).toEqual({ ok: false, error: "invalid-event-number" });
    expect(eventCount(sliceNotification(bundle, new Set([2.5])))).toBe(2);
  });

  it("R5: an event without eventNumber is never dropped, whatever the drop set holds", () => {
    const bundle = withFirstNumber("R5", undefined);
    expect(eventCount(sliceNotification(bundle, new Set([-1, 0, 1, 2])))).toBe(1);
  });

  it("generated numbers: an event is dropped exactly when parseEventNumber reads a number in the drop set (seeded)", () => {
    const raw = fc.oneof(
      fc.nat({ max: 20 }),
      fc.integer({ min: -5, max: 20 }),
      fc.double({ noNaN: true, min: -5, max: 20 }),
      fc.nat({ max: 20 }).map(String),
      fc.stringMatching(/^[0-9 +\-.e]{0,6}$/),
      fc.constantFrom("9007199254740993", "0x10", "1e1", " 3", "03", "", null),
    );
    fc.assert(
      fc.property(fc.constantFrom<Format>("R5", "R4B", "R4"), raw, fc.uniqueArray(fc.oneof(fc.integer({ min: -5, max: 20 }), fc.double({ noNaN: true, min: -5, max: 20 })), { maxLength: 6 }), (format, value, drop) => {
        const bundle = withFirstNumber(format, value, [100]);
        const parsed = parseEventNumber(value);
        const expectDropped = typeof parsed === "number" && drop.includes(parsed);
        expect(eventCount(sliceNotification(bundle, new Set(drop)))).toBe(expectDropped ? 0 : 1);
      }),
      { seed: 0x5_11ce, numRuns: 2000 },
    );
  });
});
