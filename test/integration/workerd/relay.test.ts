/**
 * The subscription relay (docs/contract.md#subscription-notifications-in-post-webhookschannel), inside workerd with
 * real Durable Objects, real alarms, and real loopback peers: webhook targets (the receiver)
 * and a source answering `$events` / `$status`. Each test uses its own channel.
 */
import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { CHANNEL_SECRET, SIGNING_SECRET } from "../../fixtures/relay-channels.ts";
import { eventNumbersOf, notification, type Format } from "../../fixtures/notifications.ts";
import { MAX_NOTIFICATION_BYTES } from "../../../src/subscriptions/webhook-route.ts";
import { eventually } from "../support/poll.ts";

const bindings = env as unknown as Record<string, string>;
const CHANNELS = (env as unknown as Env).CHANNELS;

interface Delivery {
  ok: boolean;
  status: number;
  headers: Record<string, string>;
  body: string;
}

function post(channel: string, body: unknown, secret: string | null = CHANNEL_SECRET, headers: Record<string, string> = {}) {
  return exports.default.fetch(
    new Request(`https://edge.example/webhooks/${channel}`, {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json", ...(secret ? { "X-Api-Key": secret } : {}), ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

const event = (format: Format, events: number[], subscription?: string) =>
  notification(format, "event-notification", { events, ...(subscription ? { subscription: `https://example.org/fhir/Subscription/${subscription}` } : {}) });

async function deliveries(target: string): Promise<Delivery[]> {
  return (await fetch(`${bindings.RELAY_RECEIVER}/deliveries/${target}`)).json();
}
async function control(target: string, behaviour: Record<string, unknown>) {
  await fetch(`${bindings.RELAY_RECEIVER}/control/${target}`, { method: "PUT", body: JSON.stringify(behaviour) });
}
async function setSourceSubscription(id: string, log: Record<string, unknown>) {
  await fetch(`${bindings.RELAY_SOURCE}/control/subscriptions/${id}`, { method: "PUT", body: JSON.stringify(log) });
}
const stub = (channel: string) => CHANNELS.get(CHANNELS.idFromName(channel));

/** Polls (bounded) until `check` passes. */
/** Deliveries land within seconds; 8 s bounds each wait. */
const WAIT = { timeoutMs: 8000 };
const delivered = async (target: string) => (await deliveries(target)).filter((d) => d.ok).flatMap((d) => eventNumbersOf(JSON.parse(d.body)));
const deliveredUntil = (target: string, expected: number[], ms?: number) => eventually(() => delivered(target), (v) => v.length >= expected.length, { timeoutMs: ms ?? WAIT.timeoutMs });

describe("intake: who may post, and what", () => {
  it("401 without the channel secret or with a wrong one; nothing stored", async () => {
    const none = await post("intake", event("R5", [1]), null);
    expect(none.status).toBe(401);
    expect(none.headers.get("WWW-Authenticate")).toContain("Bearer");
    expect((await post("intake", event("R5", [1]), "wrong")).status).toBe(401);
    const viaBearer = await post("intake", notification("R5", "handshake"), null, { Authorization: `Bearer ${CHANNEL_SECRET}` });
    expect(viaBearer.status).toBe(200);
    // Nothing stored: the refused posts never reached the channel, the handshake is not a delivery.
    const status = await runInDurableObject(stub("intake"), (instance) => instance.status("intake"));
    expect(status.handshakeAt).not.toBeNull();
    expect(status.nextDelivery).toBe(1);
    expect(status.lastEventNumber).toBe(0);
  });

  it.each([
    ["not JSON", "{nope", "invalid-json"],
    ["not a Bundle", { resourceType: "Patient" }, "not-a-bundle"],
    ["a Bundle that is no notification", { resourceType: "Bundle", type: "searchset", entry: [] }, "not-a-notification"],
    ["an event number past 2^53", { ...event("R5", [1]), entry: [{ resource: { resourceType: "SubscriptionStatus", type: "event-notification", notificationEvent: [{ eventNumber: "9007199254740993" }] } }] }, "invalid-event-number"],
    ["an unknown notification type", notification("R5", "sometimes" as never), "invalid-type"],
  ])("400 for %s", async (_, body, code) => {
    const res = await post("intake", body);
    expect(res.status).toBe(400);
    const outcome = (await res.json()) as { resourceType: string; issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> };
    expect(outcome.resourceType).toBe("OperationOutcome");
    expect(outcome.issue[0]!.code).toBe("invalid");
    expect(outcome.issue[0]!.details.coding[0]!.code).toBe(code);
  });

  it("400 for a body over the size limit", async () => {
    const res = await post("intake", "x".repeat(MAX_NOTIFICATION_BYTES + 1));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> }).issue[0]!.details.coding[0]!.code).toBe("body-too-large");
  });

  it("404 for an unknown channel, 500 naming the field for a misconfigured one", async () => {
    expect((await post("nope", event("R5", [1]))).status).toBe(404);
    const res = await post("broken", event("R5", [1]));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).toContain("broken");
    expect(text).toContain("targets[0].url");
  });
});

describe("the three wire forms, delivered in order to every target", () => {
  it("R5 (notification-id-only example): every target gets every event, as application/fhir+json", async () => {
    for (const n of [1, 2, 3]) expect((await post("r5", event("R5", [n]))).status).toBe(200);
    for (const target of ["r5-a", "r5-b"]) {
      expect(await deliveredUntil(target, [1, 2, 3])).toEqual([1, 2, 3]);
      const d = (await deliveries(target))[0]!;
      expect(d.headers["content-type"]).toContain("application/fhir+json");
      expect(JSON.parse(d.body)).toEqual(event("R5", [1]));
    }
  });

  it("R4B (r4b-notification-id-only) and R4 backport (r4-notification-id-only, a Parameters status)", async () => {
    for (const n of [1, 2]) expect((await post("r4b", event("R4B", [n]))).status).toBe(200);
    for (const n of [1, 2]) expect((await post("backport", event("R4", [n]))).status).toBe(200);
    expect(await deliveredUntil("r4b-a", [1, 2])).toEqual([1, 2]);
    expect(await deliveredUntil("backport-a", [1, 2])).toEqual([1, 2]);
  });

  it("signs each delivery: X-Fhir-Edge-Signature = sha256=<hex HMAC-SHA256 of the body>; the target's own headers go along", async () => {
    await post("signed", event("R5", [1]));
    const [d] = await eventually(() => deliveries("signed-a"), (v) => v.length > 0, WAIT);
    expect(d!.headers["x-target-tenant"]).toBe("ward-7");
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(SIGNING_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    const hex = d!.headers["x-fhir-edge-signature"]!.replace(/^sha256=/, "");
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    const mac = Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
    expect(await crypto.subtle.verify("HMAC", key, mac, new TextEncoder().encode(d!.body))).toBe(true);
  });

  it("handshakes and heartbeats are answered and recorded, not delivered", async () => {
    expect((await post("hs-hb", event("R4B", [1]))).status).toBe(200);
    const before = await runInDurableObject(stub("hs-hb"), (instance) => instance.status("hs-hb"));
    expect((await post("hs-hb", notification("R4B", "handshake", { eventsSinceSubscriptionStart: 1 }))).status).toBe(200);
    expect((await post("hs-hb", notification("R4B", "heartbeat", { eventsSinceSubscriptionStart: 1 }))).status).toBe(200);
    expect((await post("hs-hb", event("R4B", [2]))).status).toBe(200);
    const status = await runInDurableObject(stub("hs-hb"), (instance) => instance.status("hs-hb"));
    expect(status.handshakeAt).not.toBeNull();
    expect(status.heartbeatAt).not.toBeNull();
    // Only the two event notifications were stored and delivered.
    expect(status.nextDelivery - before.nextDelivery).toBe(1);
    expect(await deliveredUntil("hs-hb-a", [1, 2])).toEqual([1, 2]);
    const all = await deliveries("hs-hb-a");
    expect(all.map((d) => eventNumbersOf(JSON.parse(d.body)))).toEqual([[1], [2]]);
  });
});

describe("sequence: dedupe, out of order, gaps", () => {
  it("events already seen are acknowledged and not sent again", async () => {
    await post("dedupe", event("R5", [1]));
    await post("dedupe", event("R5", [2]));
    const again = await post("dedupe", event("R5", [2]));
    expect(again.status).toBe(200);
    expect(await again.text()).toContain("1 already seen");
    await post("dedupe", event("R5", [2, 3]));
    expect(await deliveredUntil("dedupe-a", [1, 2, 3])).toEqual([1, 2, 3]);
    // Three notifications stored in all (the repeat of 2 none, the overlap [2, 3] sliced to 3).
    const status = await runInDurableObject(stub("dedupe"), (instance) => instance.status("dedupe"));
    expect(status.nextDelivery).toBe(4);
    expect(status.pendingDeliveries).toBe(0);
    expect(await delivered("dedupe-a")).toEqual([1, 2, 3]);
  });

  it("a late event 2 arriving after 3 is slotted in: delivered 1, 2, 3", async () => {
    await post("late", event("R5", [1]));
    expect(await (await post("late", event("R5", [3]))).text()).toContain("1 held");
    await post("late", event("R5", [2]));
    expect(await deliveredUntil("late-a", [1, 2, 3])).toEqual([1, 2, 3]);
  });

  it("a gap is filled from $events on the source, delivered before the later event", async () => {
    await setSourceSubscription("gap-sub", { format: "R5", count: 4 });
    await post("gap", event("R5", [1], "gap-sub"));
    await post("gap", event("R5", [4], "gap-sub"));
    await runDurableObjectAlarm(stub("gap"));
    expect(await deliveredUntil("gap-a", [1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
    const requests = (await (await fetch(`${bindings.RELAY_SOURCE}/control/requests`)).json()) as string[];
    expect(requests).toContain("/fhir/Subscription/gap-sub/$events?eventsSinceNumber=2&eventsUntilNumber=3");
  });

  it("a heartbeat's eventsSinceSubscriptionStart beyond the last event is a gap too", async () => {
    await setSourceSubscription("hb-sub", { format: "R4", count: 3 });
    await post("gap-heartbeat", event("R4", [1], "hb-sub"));
    await post("gap-heartbeat", notification("R4", "heartbeat", { eventsSinceSubscriptionStart: 3, subscription: "https://example.org/fhir/Subscription/hb-sub" }));
    await runDurableObjectAlarm(stub("gap-heartbeat"));
    expect(await deliveredUntil("gap-heartbeat-a", [1, 2, 3])).toEqual([1, 2, 3]);
  });

  it("where $events is unsupported, the gap is recorded (visible in /status) and delivery goes on", async () => {
    await setSourceSubscription("noev-sub", { format: "R5", count: 5, eventsSupported: false });
    await post("no-events", event("R5", [1], "noev-sub"));
    await post("no-events", event("R5", [5], "noev-sub"));
    await runDurableObjectAlarm(stub("no-events"));
    expect(await deliveredUntil("no-events-a", [1, 5])).toEqual([1, 5]);
    const status = await exports.default.fetch(new Request("https://edge.example/status", { headers: { "X-Api-Key": "relay-admin-key" } }));
    const body = (await status.json()) as { channels: Array<{ name: string; gaps: Array<{ from: number; to: number; outcome: string }>; lastEventNumber: number }> };
    const channel = body.channels.find((c) => c.name === "no-events")!;
    expect(channel.lastEventNumber).toBe(5);
    expect(channel.gaps).toEqual([expect.objectContaining({ from: 2, to: 4, outcome: expect.stringContaining("404") })]);
  });

  it("per-bundle sequencing dedupes by event identity; none delivers everything", async () => {
    const a = event("R5", [1]);
    await post("per-bundle", a);
    await post("per-bundle", a);
    await post("per-bundle", notification("R5", "event-notification", { events: [1], base: "https://other.example/fhir" }));
    expect(await (await eventually(() => deliveries("per-bundle-a"), (v) => v.length >= 2, WAIT)).length).toBe(2);
    expect((await runInDurableObject(stub("per-bundle"), (instance) => instance.status("per-bundle"))).nextDelivery).toBe(3);
    await post("none", a);
    await post("none", a);
    expect((await eventually(() => deliveries("none-a"), (v) => v.length >= 2, WAIT)).length).toBe(2);
    expect((await runInDurableObject(stub("none"), (instance) => instance.status("none"))).nextDelivery).toBe(3);
  });
});

describe("fan-out: retries, dead targets, restarts, retention", () => {
  it("a target failing several times then receives everything, in order", async () => {
    await control("flaky-a", { fail: 3, status: 503 });
    for (const n of [1, 2, 3]) await post("flaky", event("R5", [n]));
    const got = await deliveredUntil("flaky-a", [1, 2, 3], 15_000);
    expect(got).toEqual([1, 2, 3]);
    const attempts = await deliveries("flaky-a");
    expect(attempts.filter((d) => !d.ok)).toHaveLength(3);
    // Every attempt before the first success was event 1: order is kept through retries.
    expect(attempts.slice(0, 4).map((d) => eventNumbersOf(JSON.parse(d.body))[0])).toEqual([1, 1, 1, 1]);
  }, 20_000);

  it("a target that never recovers does not hold up another", async () => {
    await control("dead", { down: true, status: 500 });
    for (const n of [1, 2, 3, 4]) await post("dead-alive", event("R5", [n]));
    expect(await deliveredUntil("alive", [1, 2, 3, 4], 3000)).toEqual([1, 2, 3, 4]);
    const dead = await eventually(() => deliveries("dead"), (v) => v.length > 0, WAIT);
    expect(dead.length).toBeGreaterThan(0);
    expect(dead.every((d) => !d.ok)).toBe(true);
    const status = await runInDurableObject(stub("dead-alive"), (instance) => instance.status("dead-alive"));
    expect(status.targets.find((t) => t.target.endsWith("/dead"))).toMatchObject({ pending: 4, lastStatus: "500" });
  });

  it("nothing accepted is lost when the object is evicted between intake and delivery", async () => {
    await control("evict-a", { down: true });
    for (const n of [1, 2, 3]) expect((await post("evict", event("R5", [n]))).status).toBe(200);
    await evictDurableObject(stub("evict"));
    await control("evict-a", { down: false });
    // The alarm (at-least-once) finds the stored notifications and delivers them in order.
    const until = Date.now() + 10_000;
    while ((await delivered("evict-a")).length < 3 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 300));
      await runDurableObjectAlarm(stub("evict"));
    }
    expect(await delivered("evict-a")).toEqual([1, 2, 3]);
  }, 15_000);

  it("retentionEvents never drops what a live target waits for: a target down past the limit gets every event when back; then only replay is trimmed", async () => {
    await control("retention-a", { down: true });
    for (const n of [1, 2, 3, 4, 5]) await post("retention", event("R5", [n]));
    await runDurableObjectAlarm(stub("retention"));
    const waiting = await runInDurableObject(stub("retention"), (instance) => instance.status("retention"));
    expect(waiting.pendingDeliveries).toBe(5);
    expect(waiting.targets[0]).toMatchObject({ dropped: 0, pending: 5 });

    await control("retention-a", { down: false });
    const got = await eventually(
      async () => {
        await runDurableObjectAlarm(stub("retention"));
        return delivered("retention-a");
      },
      (v) => v.length >= 5,
    );
    expect(got).toEqual([1, 2, 3, 4, 5]);
    // Settled, kept only for replay: the count limit applies to them.
    await runDurableObjectAlarm(stub("retention"));
    const status = await runInDurableObject(stub("retention"), (instance) => instance.status("retention"));
    expect(status.targets[0]).toMatchObject({ dropped: 0, pending: 0, cursor: 5 });
    expect(status.replay).toMatchObject({ retained: 2, oldestEvent: 4 });
  });

  it("replay: GET /admin/channels/:channel/events?since=N returns the retained notifications after N", async () => {
    await control("replay-a", { down: true });
    for (const n of [1, 2, 3]) await post("replay", event("R4", [n]));
    const res = await exports.default.fetch(new Request("https://edge.example/admin/channels/replay/events?since=1", { headers: { "X-Api-Key": "relay-admin-key" } }));
    expect(res.status).toBe(200);
    const bundle = (await res.json()) as { type: string; entry: Array<{ resource: unknown }> };
    expect(bundle.type).toBe("collection");
    expect(bundle.entry.map((e) => eventNumbersOf(e.resource))).toEqual([[2], [3]]);
  });
});

describe("liveness", () => {
  it("silent past heartbeatPeriod x 2: asks $status and recovers what it missed", async () => {
    await setSourceSubscription("live-sub", { format: "R5", count: 3 });
    await post("liveness", notification("R5", "handshake", { subscription: "https://example.org/fhir/Subscription/live-sub", eventsSinceSubscriptionStart: 0 }));
    await new Promise((r) => setTimeout(r, 2200));
    await runDurableObjectAlarm(stub("liveness"));
    expect(await deliveredUntil("liveness-a", [1, 2, 3])).toEqual([1, 2, 3]);
    const requests = (await (await fetch(`${bindings.RELAY_SOURCE}/control/requests`)).json()) as string[];
    expect(requests).toContain("/fhir/Subscription/live-sub/$status");
  });
});

describe("zero loss across quiet periods (issue #10's reproduction)", () => {
  const statusOf = (channel: string) => runInDurableObject(stub(channel), (instance) => instance.status(channel));

  it("event 2 after the alarm has trimmed event 1 is delivered", async () => {
    expect((await post("quiet", event("R5", [1]))).status).toBe(200);
    expect(await deliveredUntil("quiet-a", [1])).toEqual([1]);
    await runDurableObjectAlarm(stub("quiet"));
    // Everything delivered and cleaned up: storage holds no notification.
    expect((await statusOf("quiet")).replay.retained).toBe(0);
    expect((await post("quiet", event("R5", [2]))).status).toBe(200);
    expect(await deliveredUntil("quiet-a", [1, 2])).toEqual([1, 2]);
    // The delivery sequence went on; it was not renumbered from 1.
    expect((await deliveries("quiet-a")).map((d) => d.headers["x-fhir-edge-delivery"])).toEqual(["1", "2"]);
    const status = await statusOf("quiet");
    expect(status.targets[0]).toMatchObject({ cursor: 2, lastEvent: 2, pending: 0, delivered: 2 });
  });

  it("events recovered through $events after a quiet period are delivered", async () => {
    await setSourceSubscription("quiet-gap-sub", { format: "R5", count: 4 });
    await post("quiet-gap", event("R5", [1], "quiet-gap-sub"));
    expect(await deliveredUntil("quiet-gap-a", [1])).toEqual([1]);
    await runDurableObjectAlarm(stub("quiet-gap"));
    expect((await statusOf("quiet-gap")).replay.retained).toBe(0);
    expect(await (await post("quiet-gap", event("R5", [4], "quiet-gap-sub"))).text()).toContain("1 held");
    await runDurableObjectAlarm(stub("quiet-gap"));
    expect(await deliveredUntil("quiet-gap-a", [1, 2, 3, 4])).toEqual([1, 2, 3, 4]);
    expect((await statusOf("quiet-gap")).gaps).toEqual([]);
  });
});

describe("held notifications and partial recoveries", () => {
  it("a held [3] and a later [3, 4] keep the longer one: event 4 is delivered", async () => {
    await post("held-longer", event("R5", [1]));
    await post("held-longer", event("R5", [3]));
    await post("held-longer", event("R5", [3, 4]));
    await post("held-longer", event("R5", [2]));
    expect(await deliveredUntil("held-longer-a", [1, 2, 3, 4], 3000)).toEqual([1, 2, 3, 4]);
  });

  it("a partial $events answer: what it did not return is a gap in /status, the rest is delivered", async () => {
    await setSourceSubscription("partial-sub", { format: "R4", count: 5, missing: [3] });
    await post("partial", event("R4", [1], "partial-sub"));
    await post("partial", event("R4", [5], "partial-sub"));
    await runDurableObjectAlarm(stub("partial"));
    expect(await deliveredUntil("partial-a", [1, 2, 4, 5])).toEqual([1, 2, 4, 5]);
    const status = await statusOf("partial");
    expect(status.gaps).toEqual([expect.objectContaining({ from: 3, to: 3, outcome: "$events did not return these events" })]);
    expect(status.unrecoverableEvents).toBe(1);
    expect(status.lastEventNumber).toBe(5);
  });

  function statusOf(channel: string) {
    return runInDurableObject(stub(channel), (instance) => instance.status(channel));
  }
});

describe("replay after delivery", () => {
  it("GET /admin/channels/:channel/events returns delivered notifications within the replay window; /status says how far back", async () => {
    for (const n of [1, 2]) await post("replay-after", event("R5", [n]));
    expect(await deliveredUntil("replay-after-a", [1, 2])).toEqual([1, 2]);
    await runDurableObjectAlarm(stub("replay-after"));
    const res = await exports.default.fetch(new Request("https://edge.example/admin/channels/replay-after/events?since=0", { headers: { "X-Api-Key": "relay-admin-key" } }));
    const bundle = (await res.json()) as { entry: Array<{ resource: unknown }> };
    expect(bundle.entry.map((e) => eventNumbersOf(e.resource))).toEqual([[1], [2]]);
    const status = await runInDurableObject(stub("replay-after"), (instance) => instance.status("replay-after"));
    expect(status.pendingDeliveries).toBe(0);
    expect(status.replay).toMatchObject({ windowSeconds: 86_400, retained: 2, oldestEvent: 1, oldestDelivery: 1 });
  });
});
