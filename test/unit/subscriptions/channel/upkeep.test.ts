/**
 * The retention limits (docs/relay.md#delivery-guarantees, "Storage is bounded"; docs/storage.md):
 * `retentionEvents` trims notifications kept only for replay, never what a live target still
 * waits for; only `retentionSeconds` drops pending rows (a target gone for good), counted in
 * `dropped`. Against the real ChannelObject and its SQLite storage, with the clock and the
 * target injected. The `retention` channel keeps `retentionEvents: 2` and the default 7 days.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ChannelObject } from "../../../../src/subscriptions/channel/object.ts";
import { parseNotification } from "../../../../src/subscriptions/notification.ts";
import { eventNumbersOf, notification } from "../../../fixtures/notifications.ts";

const CHANNELS = (env as unknown as Env).CHANNELS;
const CHANNEL = "retention";
const SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000;

/** One target on the `retention` channel, answering 503 while `down`. */
function harness(state: DurableObjectState) {
  const world = { clock: Date.now() + 86_400_000, down: true, received: [] as Request[] };
  const object = new ChannelObject(state, env as unknown as Env, {
    now: () => world.clock,
    random: () => 0.5,
    fetch: async (request) => {
      if (world.down) return new Response(null, { status: 503 });
      world.received.push(request);
      return new Response(null, { status: 200 });
    },
    setAlarm: async () => {},
  });
  const post = async (events: number[]) => {
    const body = notification("R5", "event-notification", { events });
    const parsed = parseNotification(body);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await object.accept(CHANNEL, parsed.value, JSON.stringify(body))).toMatchObject({ ok: true, stored: 1 });
    await object.idle();
  };
  const alarm = async () => {
    await object.alarm();
    await object.idle();
  };
  return { world, object, post, alarm };
}

describe("retentionEvents: a live target never loses what it waits for", () => {
  it("a target in backoff with more pending than retentionEvents keeps them all, then receives every one in order", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("retention-backoff")), async (_instance, state) => {
      const { world, object, post, alarm } = harness(state);
      for (const n of [1, 2, 3, 4, 5]) await post([n]);
      // The target is failing (in backoff): sweeps run while it waits.
      world.clock += 30_000;
      await alarm();
      await alarm();
      const waiting = await object.status(CHANNEL);
      expect(waiting.targets[0]).toMatchObject({ pending: 5, dropped: 0 });
      expect(waiting.pendingDeliveries).toBe(5);

      world.down = false;
      world.clock += 30_000;
      await alarm();
      const got = await Promise.all(world.received.map(async (r) => eventNumbersOf(JSON.parse(await r.text()))));
      expect(got.flat()).toEqual([1, 2, 3, 4, 5]);
      expect(world.received.map((r) => r.headers.get("X-Fhir-Edge-Delivery"))).toEqual(["1", "2", "3", "4", "5"]);

      // Settled now, kept only for replay: the count limit applies to them.
      await alarm();
      const after = await object.status(CHANNEL);
      expect(after.targets[0]).toMatchObject({ pending: 0, dropped: 0, cursor: 5 });
      expect(after.replay).toMatchObject({ retained: 2, oldestEvent: 4 });
    });
  });
});

describe("retentionSeconds: a target gone for good loses what is older, counted", () => {
  it("pending notifications older than retentionSeconds are dropped, counted in dropped; younger ones stay", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("retention-gone")), async (_instance, state) => {
      const { world, object, post, alarm } = harness(state);
      for (const n of [1, 2, 3]) await post([n]);
      world.clock += SEVEN_DAYS_MS - 60_000;
      await alarm();
      expect((await object.status(CHANNEL)).targets[0]).toMatchObject({ pending: 3, dropped: 0 });

      world.clock += 61_000;
      await post([4]);
      await alarm();
      const status = await object.status(CHANNEL);
      expect(status.targets[0]).toMatchObject({ pending: 1, dropped: 3, cursor: 3 });
      expect(status.replay).toMatchObject({ retained: 1, oldestEvent: 4 });
    });
  });
});
