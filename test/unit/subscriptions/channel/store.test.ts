/**
 * The channel store's target bookkeeping (docs/storage.md, docs/relay.md "Where the contract is
 * silent"): a target removed from the configuration leaves nothing pending behind. Against the
 * real ChannelObject and its SQLite storage, with the clock and the targets injected; the
 * configuration without the target is the same bindings with the channel's `targets` edited.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ChannelObject } from "../../../../src/subscriptions/channel/object.ts";
import { parseNotification } from "../../../../src/subscriptions/notification.ts";
import { notification } from "../../../fixtures/notifications.ts";

const CHANNELS = (env as unknown as Env).CHANNELS;
const bindings = env as unknown as Record<string, string>;
const CHANNEL = "dead-alive";

/** The bindings with the `dead-alive` channel's targets filtered (a channel with no target reads it over its WebSocket inbox). */
function withTargets(keep: (url: string) => boolean): Env {
  const channels = JSON.parse(bindings.FHIR_CHANNELS!) as Record<string, { targets: Array<{ url: string }>; subscribers?: string[] }>;
  channels[CHANNEL]!.targets = channels[CHANNEL]!.targets.filter((t) => keep(t.url));
  if (channels[CHANNEL]!.targets.length === 0) channels[CHANNEL]!.subscribers = ["relay-admin"];
  return { ...(env as unknown as Env), FHIR_CHANNELS: JSON.stringify(channels) } as Env;
}
const withoutDeadTarget = () => withTargets((url) => !url.endsWith("/dead"));

/** Injected clock, random, fetch (the `dead` target answers 503, or every target when `allFail`) and recorded alarms. */
function channelDeps(allFail = false) {
  const alarms: number[] = [];
  const deps = {
    clock: Date.now() + 86_400_000,
    alarms,
    now: () => deps.clock,
    random: () => 0.5,
    fetch: async (request: Request) => new Response(null, { status: allFail || request.url.endsWith("/dead") ? 503 : 200 }),
    setAlarm: async (at: number) => {
      alarms.push(at);
    },
  };
  return deps;
}

/** Accepts event notifications 1 and 2 and waits until their delivery attempts are over. */
async function acceptEventsOneAndTwo(channel: ChannelObject): Promise<void> {
  for (const n of [1, 2]) {
    const body = notification("R5", "event-notification", { events: [n] });
    const parsed = parseNotification(body);
    if (!parsed.ok) throw new Error(parsed.error);
    expect(await channel.accept(CHANNEL, parsed.value, JSON.stringify(body))).toMatchObject({ ok: true, stored: 1 });
    await channel.idle();
  }
}

describe("a target removed from the configuration", () => {
  it("with every target removed (the channel keeps only its WebSocket subscribers), nothing stays pending or unsettled either", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("all-targets-removed")), async (_instance, state) => {
      const deps = channelDeps(true);
      const before = new ChannelObject(state, env as unknown as Env, deps);
      await acceptEventsOneAndTwo(before);
      const after = new ChannelObject(state, withTargets(() => false), deps);
      const status = await after.status(CHANNEL);
      expect(status.targets).toEqual([]);
      expect(status.pendingDeliveries).toBe(0);
      const sql = state.storage.sql;
      expect(sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n).toBe(0);
      expect(sql.exec("SELECT COUNT(*) AS n FROM notifications WHERE settled_at IS NULL").one().n).toBe(0);
      deps.clock += 24 * 3600 * 1000 + 1;
      deps.alarms.length = 0;
      await after.alarm();
      await after.idle();
      expect(sql.exec("SELECT COUNT(*) AS n FROM notifications").one().n).toBe(0);
      expect(deps.alarms).toEqual([]);
    });
  });

  it("its pending rows go, counted in its dropped; the notifications it held up are settled, so they leave with the replay window and no retention alarm stays", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("removed-target")), async (_instance, state) => {
      const deps = channelDeps();
      const before = new ChannelObject(state, env as unknown as Env, deps);
      await acceptEventsOneAndTwo(before);
      expect((await before.status(CHANNEL)).targets.map((t) => [t.target.split("/").pop(), t.pending])).toEqual([
        ["dead", 2],
        ["alive", 0],
      ]);

      // Deployed again without the dead target.
      const after = new ChannelObject(state, withoutDeadTarget(), deps);
      const status = await after.status(CHANNEL);
      expect(status.targets.map((t) => t.target.split("/").pop())).toEqual(["alive"]);
      expect(status.pendingDeliveries).toBe(0);
      const sql = state.storage.sql;
      expect(sql.exec("SELECT COUNT(*) AS n FROM notifications WHERE settled_at IS NULL").one().n).toBe(0);
      expect(sql.exec("SELECT dropped, cursor FROM target_state WHERE url LIKE '%/dead'").one()).toEqual({ dropped: 2, cursor: 2 });

      // Past the replay window (24 h), well short of the 7-day retention: the alarm empties storage and schedules nothing more.
      deps.clock += 24 * 3600 * 1000 + 1;
      deps.alarms.length = 0;
      await after.alarm();
      await after.idle();
      expect(sql.exec("SELECT (SELECT COUNT(*) FROM notifications) AS n, (SELECT COUNT(*) FROM outbox) AS o").one()).toEqual({ n: 0, o: 0 });
      expect(deps.alarms).toEqual([]);
    });
  });
});
