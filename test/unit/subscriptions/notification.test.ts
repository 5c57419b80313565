import { describe, expect, it } from "vitest";
import { parseEventNumber, parseNotification, parseStatusResponse, subscriptionIdOf } from "../../../src/subscriptions/notification.ts";
import { notification } from "../../fixtures/notifications.ts";

describe("recognising the three wire forms", () => {
  it("R5: subscription-notification Bundle, SubscriptionStatus first (notification-id-only example)", () => {
    expect(parseNotification(notification("R5", "event-notification", { events: [2] }))).toEqual({
      ok: true,
      value: {
        format: "R5",
        type: "event-notification",
        subscriptionId: "admission",
        topic: "http://hl7.org/SubscriptionTopic/admission",
        status: "active",
        eventsSinceSubscriptionStart: 2,
        events: [{ eventNumber: 2, focus: "https://example.org/fhir/Encounter/2", key: "focus:https://example.org/fhir/Encounter/2@2020-05-29T11:44:13.1882432-05:00" }],
      },
    });
  });

  it("R4B: history Bundle, SubscriptionStatus first (r4b-notification-id-only)", () => {
    const r = parseNotification(notification("R4B", "event-notification", { events: [7, 8] }));
    expect(r.ok && r.value.format).toBe("R4B");
    expect(r.ok && r.value.events.map((e) => e.eventNumber)).toEqual([7, 8]);
  });

  it("R4 backport: history Bundle, Parameters status first, integers as strings (r4-notification-id-only)", () => {
    const r = parseNotification(notification("R4", "event-notification", { events: [2] }));
    expect(r).toMatchObject({ ok: true, value: { format: "R4-backport", type: "event-notification", subscriptionId: "admission", eventsSinceSubscriptionStart: 2, events: [{ eventNumber: 2 }] } });
  });

  it("handshakes and heartbeats carry no events", () => {
    for (const format of ["R5", "R4B", "R4"] as const) {
      expect(parseNotification(notification(format, "handshake"))).toMatchObject({ ok: true, value: { type: "handshake", events: [] } });
      expect(parseNotification(notification(format, "heartbeat", { eventsSinceSubscriptionStart: 4 }))).toMatchObject({ ok: true, value: { type: "heartbeat", eventsSinceSubscriptionStart: 4 } });
    }
  });

  it.each([
    ["a Patient", { resourceType: "Patient" }, "not-a-bundle"],
    ["a searchset", { resourceType: "Bundle", type: "searchset", entry: [{ resource: { resourceType: "SubscriptionStatus" } }] }, "not-a-notification"],
    ["a history Bundle of Patients", { resourceType: "Bundle", type: "history", entry: [{ resource: { resourceType: "Patient" } }] }, "not-a-notification"],
    ["JSON that is not an object", [1, 2], "not-a-bundle"],
  ])("refuses %s", (_, body, error) => {
    expect(parseNotification(body)).toEqual({ ok: false, error });
  });
});

describe("integer64 event numbers", () => {
  it("reads strings (R5, R4B) and numbers; refuses what would lose precision", () => {
    expect(parseEventNumber("42")).toBe(42);
    expect(parseEventNumber(42)).toBe(42);
    expect(parseEventNumber("9007199254740991")).toBe(9007199254740991);
    expect(parseEventNumber("9007199254740992")).toBe("invalid");
    expect(parseEventNumber("-1")).toBe("invalid");
    expect(parseEventNumber("1.5")).toBe("invalid");
    expect(parseEventNumber(undefined)).toBeUndefined();
  });
});

describe("subscription ids and $status answers", () => {
  it("takes the id from relative, absolute and versioned references", () => {
    expect(subscriptionIdOf("Subscription/123")).toBe("123");
    expect(subscriptionIdOf("https://ehr.example/fhir/Subscription/abc-1/_history/2")).toBe("abc-1");
    expect(subscriptionIdOf("Patient/1")).toBeUndefined();
  });
  it("reads eventsSinceSubscriptionStart from a $status Bundle of SubscriptionStatus or Parameters", () => {
    for (const format of ["R5", "R4"] as const) {
      const status = (notification(format, "query-status", { eventsSinceSubscriptionStart: 9 }).entry as Array<{ resource: unknown }>)[0]!.resource;
      expect(parseStatusResponse({ resourceType: "Bundle", type: "searchset", entry: [{ resource: status }] })).toBe(9);
    }
    expect(parseStatusResponse({ resourceType: "OperationOutcome" })).toBeUndefined();
  });
});
