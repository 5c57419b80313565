/**
 * The channel Durable Object already runs in deployments: its first version's tables (`meta`,
 * `deliveries`, `held`, `targets`, `seen_keys`, `gaps`) migrate to the state row and the outbox
 * with nothing pending dropped (docs/storage.md, ChannelObject). Built here as the first
 * version wrote them, then opened by today's object.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ChannelObject } from "../../../../src/subscriptions/channel/object.ts";
import { parseNotification } from "../../../../src/subscriptions/notification.ts";
import { eventNumbersOf, notification } from "../../../fixtures/notifications.ts";

const CHANNELS = (env as unknown as Env).CHANNELS;
const bindings = env as unknown as Record<string, string>;

/** The first version's schema, as src/subscriptions/channel-schema.ts had it. */
const FIRST_VERSION_SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, first_event INTEGER, last_event INTEGER, body TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE held (first_event INTEGER PRIMARY KEY, last_event INTEGER NOT NULL, seen TEXT NOT NULL, body TEXT NOT NULL, received_at INTEGER NOT NULL);
CREATE TABLE targets (url TEXT PRIMARY KEY, cursor INTEGER NOT NULL, failures INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_status TEXT, delivered INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0);
CREATE TABLE seen_keys (key TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE gaps (from_event INTEGER NOT NULL, to_event INTEGER NOT NULL, outcome TEXT NOT NULL, at INTEGER NOT NULL);
`;

const body = (n: number[]) => JSON.stringify(notification("R5", "event-notification", { events: n, subscription: "https://example.org/fhir/Subscription/mig-sub" }));

describe("migration from the first version's tables", () => {
  it("keeps the sequence, turns what each target had not received into outbox rows, and continues the delivery sequence", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("migration")), async (_instance, state) => {
      const sql = state.storage.sql;
      // The object the platform made has migrated an empty storage: start over from the first version's tables.
      for (const { name } of sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'").toArray()) sql.exec(`DROP TABLE "${name}"`);
      sql.exec(FIRST_VERSION_SCHEMA);
      const hookA = `${bindings.RELAY_RECEIVER}/hooks/migrated-a`;
      const hookB = `${bindings.RELAY_RECEIVER}/hooks/migrated-b`;
      for (const [key, value] of [["channel", "migrated"], ["subscriptionId", "mig-sub"], ["lastEvent", "3"], ["handshakeAt", "1700000000000"], ["gapSince", "1700000000000"], ["gapTo", "4"]]) {
        sql.exec("INSERT INTO meta (key, value) VALUES (?, ?)", key, value);
      }
      for (const n of [1, 2, 3]) sql.exec("INSERT INTO deliveries (seq, first_event, last_event, body, received_at) VALUES (?, ?, ?, ?, ?)", n, n, n, body([n]), 1700000000000);
      sql.exec("INSERT INTO targets (url, cursor, delivered, last_status) VALUES (?, 3, 3, '200'), (?, 1, 1, '503')", hookA, hookB);
      sql.exec("INSERT INTO held (first_event, last_event, seen, body, received_at) VALUES (5, 5, '[]', ?, 1700000000000)", body([5]));
      sql.exec("INSERT INTO gaps (from_event, to_event, outcome, at) VALUES (10, 12, 'old gap', 1700000000000)");

      const posted: Array<{ target: string; delivery: string | null; request: Request }> = [];
      const deps = {
        now: () => 1700000100000,
        fetch: async (request: Request) => {
          posted.push({ target: new URL(request.url).pathname.split("/").pop()!, delivery: request.headers.get("X-Fhir-Edge-Delivery"), request });
          return new Response(null, { status: 200 });
        },
        source: async () => Response.json(notification("R5", "query-event", { events: [4], subscription: "https://example.org/fhir/Subscription/mig-sub" })),
        setAlarm: async () => {},
      };
      const object = new ChannelObject(state, env as unknown as Env, deps);

      const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' ORDER BY name").toArray().map((r) => r.name);
      expect(tables).toEqual(["channel_state", "gaps", "held_notifications", "notifications", "outbox", "schema_migrations", "seen_keys", "target_state"]);
      expect(sql.exec("SELECT version FROM schema_migrations ORDER BY version").toArray()).toEqual([{ version: 1 }, { version: 2 }]);
      const status = await object.status("migrated");
      expect(status).toMatchObject({ subscriptionId: "mig-sub", lastEventNumber: 3, nextDelivery: 4, heldOutOfOrder: 1, pendingGap: { from: 4, to: 4 }, unrecoverableEvents: 3 });
      expect(status.targets.map((t) => [t.target.split("/").pop(), t.cursor, t.pending, t.lastEvent])).toEqual([
        ["migrated-a", 3, 0, 3],
        ["migrated-b", 1, 2, 1],
      ]);

      // Opened again (a restart): nothing migrates twice.
      new ChannelObject(state, env as unknown as Env, deps);
      expect(sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n).toBe(2);

      // The alarm: the gap (4) is recovered, the held 5 released; b gets 2 and 3 first, under their old numbers.
      await object.alarm();
      await object.idle();
      const seen = await Promise.all(posted.map(async (p) => [p.target, p.delivery, eventNumbersOf(JSON.parse(await p.request.text()))]));
      expect(seen.filter(([t]) => t === "migrated-b")).toEqual([
        ["migrated-b", "2", [2]],
        ["migrated-b", "3", [3]],
        ["migrated-b", "4", [4]],
        ["migrated-b", "5", [5]],
      ]);
      expect(seen.filter(([t]) => t === "migrated-a")).toEqual([
        ["migrated-a", "4", [4]],
        ["migrated-a", "5", [5]],
      ]);

      // Intake goes on after the migrated sequence.
      const six = notification("R5", "event-notification", { events: [6] });
      const parsed = parseNotification(six);
      if (!parsed.ok) throw new Error(parsed.error);
      expect(await object.accept("migrated", parsed.value, JSON.stringify(six))).toEqual({ ok: true, stored: 1, duplicates: 0, held: 0 });
      await object.idle();
      expect(posted.slice(-2).map((p) => p.delivery)).toEqual(["6", "6"]);
      expect((await object.status("migrated")).targets.map((t) => t.pending)).toEqual([0, 0]);
    });
  });

  it("a quiet channel (no deliveries stored, cursors at 57) continues the delivery sequence after the cursors, so no X-Fhir-Edge-Delivery is issued twice", async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("migration-quiet")), async (_instance, state) => {
      const sql = state.storage.sql;
      for (const { name } of sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'").toArray()) sql.exec(`DROP TABLE "${name}"`);
      sql.exec(FIRST_VERSION_SCHEMA);
      const hookA = `${bindings.RELAY_RECEIVER}/hooks/migrated-a`;
      const hookB = `${bindings.RELAY_RECEIVER}/hooks/migrated-b`;
      for (const [key, value] of [["channel", "migrated"], ["subscriptionId", "mig-sub"], ["lastEvent", "57"]]) sql.exec("INSERT INTO meta (key, value) VALUES (?, ?)", key, value);
      // Everything was delivered and trimmed: the first version kept no deliveries, only the cursors.
      sql.exec("INSERT INTO targets (url, cursor, delivered, last_status) VALUES (?, 57, 57, '200'), (?, 57, 57, '200')", hookA, hookB);

      const deliveries: Array<string | null> = [];
      const deps = {
        now: () => 1700000100000,
        fetch: async (request: Request) => {
          deliveries.push(request.headers.get("X-Fhir-Edge-Delivery"));
          return new Response(null, { status: 200 });
        },
        setAlarm: async () => {},
      };
      const object = new ChannelObject(state, env as unknown as Env, deps);
      expect(await object.status("migrated")).toMatchObject({ lastEventNumber: 57, nextDelivery: 58 });

      const next = notification("R5", "event-notification", { events: [58], subscription: "https://example.org/fhir/Subscription/mig-sub" });
      const parsed = parseNotification(next);
      if (!parsed.ok) throw new Error(parsed.error);
      expect(await object.accept("migrated", parsed.value, JSON.stringify(next))).toMatchObject({ ok: true, stored: 1 });
      await object.idle();
      expect(deliveries).toEqual(["58", "58"]);
    });
  });
});
