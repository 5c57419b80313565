/**
 * Zero loss, proven by generated histories (design.md section 3, "Zero loss, stated plainly").
 *
 * fast-check generates histories of what a source, the network and the platform can do to a
 * strict channel: notifications in order and out of order, duplicates, events only `$events`
 * knows, events the source cannot return, heartbeats and handshakes with higher counts, quiet
 * periods in which alarms run and storage is trimmed, targets failing or down, restarts (a new
 * object over the same storage), retention sweeps, alarms run twice. Each history runs against
 * the real ChannelObject and its real SQLite storage in workerd, with the clock, the targets and
 * the source injected (no HTTP, no sleeping). A reference model of the source says what every
 * target must end with; after each history (all targets up, time moved on) the invariants are
 * checked for every target. A failure prints the seed and the shrunk history; set MODEL_SEED
 * (and MODEL_PATH) to replay it, MODEL_RUNS to run more (`npm run soak`).
 */
import { env, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ChannelObject } from "../../../../src/subscriptions/channel/object.ts";
import type { SourceGet } from "../../../../src/subscriptions/channel/source-client.ts";
import { parseNotification } from "../../../../src/subscriptions/notification.ts";
import { eventNumbersOf, notification, type Format, type Kind } from "../../../fixtures/notifications.ts";

const bindings = env as unknown as Record<string, string>;
const CHANNELS = (env as unknown as Env).CHANNELS;
const CHANNEL = "model";
const TARGETS = ["model-a", "model-b", "model-c"] as const;
const SUBSCRIPTION = "https://example.org/fhir/Subscription/model-sub";
const REPLAY_WINDOW_MS = 60_000;
const NUM_RUNS = Number(bindings.MODEL_RUNS || 500);

interface Receipt {
  ok: boolean;
  delivery: number;
  /** The Standard Webhooks `webhook-id` (model-a signs; the others have no secret). */
  webhookId: string | null;
  /** Read after the history: reading a body is an I/O turn, which commits storage and costs milliseconds. */
  request: Request;
}

/** The world around the object: the source's event log, and the targets. Also the reference model. */
class World {
  format: Format;
  /** Events the source has generated: 1..generated. */
  generated = 0;
  /** Events the source cannot return from `$events` (and never sent). */
  readonly lost = new Set<number>();
  /** The source's `$events` and `$status` answer 503 (an outage): what a recovery needs then is given up. */
  sourceDown = false;
  outageSeen = false;
  /** Every event-notification Bundle sent, by its event numbers (for duplicates). */
  readonly sent: number[][] = [];
  readonly targets = new Map(TARGETS.map((t) => [t, { failNext: 0, down: false, receipts: [] as Receipt[] }]));
  clock: number;

  constructor(format: Format, start: number) {
    this.format = format;
    this.clock = start;
  }

  bundle(kind: Kind, events: number[] = []): Record<string, unknown> {
    return notification(this.format, kind, { subscription: SUBSCRIPTION, events, eventsSinceSubscriptionStart: kind === "event-notification" ? Math.max(0, ...events) : this.generated });
  }

  /** The targets: record every attempt, answer as the test set them. */
  readonly fetch = async (request: Request): Promise<Response> => {
    const name = new URL(request.url).pathname.split("/").pop() as (typeof TARGETS)[number];
    const target = this.targets.get(name);
    if (!target) throw new Error(`no target ${request.url}`);
    const failing = target.down || target.failNext > 0;
    if (target.failNext > 0) target.failNext--;
    target.receipts.push({ ok: !failing, delivery: Number(request.headers.get("X-Fhir-Edge-Delivery")), webhookId: request.headers.get("webhook-id"), request });
    return new Response(null, { status: failing ? 503 : 200 });
  };

  /** The source's `$events` and `$status`, from its log. */
  readonly source: SourceGet = async (_source, pathAndQuery) => {
    if (this.sourceDown) return new Response(null, { status: 503 });
    const url = new URL(pathAndQuery, "https://source.example/fhir/");
    if (url.pathname.endsWith("/$status")) {
      const status = (this.bundle("query-status").entry as Array<{ resource: unknown }>)[0]!.resource;
      return Response.json({ resourceType: "Bundle", type: "searchset", entry: [{ resource: status }] });
    }
    const since = Number(url.searchParams.get("eventsSinceNumber"));
    const until = Math.min(Number(url.searchParams.get("eventsUntilNumber")), this.generated);
    const events: number[] = [];
    for (let n = since; n <= until; n++) if (!this.lost.has(n)) events.push(n);
    return Response.json(this.bundle("query-event", events));
  };
}

/** The system under test: one object over one storage, replaced on restart. */
interface Real {
  object: ChannelObject;
  restart(): ChannelObject;
}

type Command = fc.AsyncCommand<World, Real>;

async function accept(real: Real, body: Record<string, unknown>): Promise<void> {
  const parsed = parseNotification(body);
  if (!parsed.ok) throw new Error(parsed.error);
  const result = await real.object.accept(CHANNEL, parsed.value, JSON.stringify(body));
  if (!result.ok) throw new Error(result.message);
  await real.object.idle();
}

async function alarm(real: Real): Promise<void> {
  await real.object.alarm();
  await real.object.idle();
}

const command = (name: string, run: (w: World, r: Real) => Promise<void>, check: (w: World) => boolean = () => true): Command => ({
  check,
  run,
  toString: () => name,
});

const commands = [
  fc.integer({ min: 1, max: 3 }).map((k) =>
    command(`emit(${k})`, async (w, r) => {
      const events = Array.from({ length: k }, (_, i) => w.generated + 1 + i);
      w.generated += k;
      w.sent.push(events);
      await accept(r, w.bundle("event-notification", events));
    }),
  ),
  fc.integer({ min: 2, max: 3 }).map((k) =>
    command(`emitOutOfOrder(${k})`, async (w, r) => {
      const events = Array.from({ length: k }, (_, i) => w.generated + 1 + i).reverse();
      w.generated += k;
      for (const n of events) {
        w.sent.push([n]);
        await accept(r, w.bundle("event-notification", [n]));
      }
    }),
  ),
  fc.integer({ min: 1, max: 2 }).map((k) =>
    command(
      `emitOverlapping(${k})`,
      async (w, r) => {
        const events = Array.from({ length: k + 1 }, (_, i) => w.generated + i);
        w.generated += k;
        w.sent.push(events);
        await accept(r, w.bundle("event-notification", events));
      },
      (w) => w.sent.some((b) => b.includes(w.generated)),
    ),
  ),
  fc.constant(
    command("emitWithHole", async (w, r) => {
      // One Bundle with events n+1 and n+3; n+2 only the source's $events knows.
      const events = [w.generated + 1, w.generated + 3];
      w.generated += 3;
      w.sent.push(events);
      await accept(r, w.bundle("event-notification", events));
    }),
  ),
  fc.nat().map((i) =>
    command(
      `duplicate(${i})`,
      async (w, r) => accept(r, w.bundle("event-notification", w.sent[i % w.sent.length]!)),
      (w) => w.sent.length > 0,
    ),
  ),
  fc.integer({ min: 1, max: 3 }).map((k) =>
    command(`skip(${k})`, async (w) => {
      w.generated += k;
    }),
  ),
  fc.integer({ min: 1, max: 2 }).map((k) =>
    command(`lose(${k})`, async (w) => {
      for (let i = 0; i < k; i++) w.lost.add(++w.generated);
    }),
  ),
  fc.constant(command("heartbeat", async (w, r) => accept(r, w.bundle("heartbeat")))),
  fc.constant(command("handshake", async (w, r) => accept(r, w.bundle("handshake")))),
  fc.constantFrom(2_000, 10_000, 90_000, 600_000).map((ms) =>
    command(`quiet(${ms})`, async (w, r) => {
      w.clock += ms;
      await alarm(r);
    }),
  ),
  fc.integer({ min: 0, max: 3_000 }).map((ms) =>
    command(`tick(${ms})`, async (w) => {
      w.clock += ms;
    }),
  ),
  fc.tuple(fc.constantFrom(...TARGETS), fc.integer({ min: 1, max: 4 })).map(([t, n]) =>
    command(`fails(${t}, ${n})`, async (w) => {
      w.targets.get(t)!.failNext = n;
    }),
  ),
  fc.constantFrom(...TARGETS).map((t) =>
    command(`down(${t})`, async (w) => {
      w.targets.get(t)!.down = true;
    }),
  ),
  fc.constantFrom(...TARGETS).map((t) =>
    command(`up(${t})`, async (w, r) => {
      w.targets.get(t)!.down = false;
      await alarm(r);
    }),
  ),
  fc.boolean().map((down) =>
    command(down ? "sourceDown" : "sourceUp", async (w) => {
      w.sourceDown = down;
      w.outageSeen ||= down;
    }),
  ),
  fc.constant(
    command("restart", async (_w, r) => {
      await r.object.idle();
      r.restart();
    }),
  ),
  fc.integer({ min: 0, max: 2 * REPLAY_WINDOW_MS }).map((ms) =>
    command(`retentionSweep(+${ms})`, async (w, r) => {
      w.clock += ms;
      await alarm(r);
    }),
  ),
  fc.constant(
    command("alarmTwice", async (_w, r) => {
      await alarm(r);
      await alarm(r);
    }),
  ),
];

/** Drops every table of the object (the platform's own excepted); the next ChannelObject migrates afresh. */
function wipe(sql: SqlStorage): void {
  const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'").toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
}

/** Runs one history, settles it, and checks every invariant. */
async function runHistory(state: DurableObjectState, format: Format, history: Iterable<Command>): Promise<void> {
  // One object for every history, emptied before each: a fresh Durable Object per history costs tens of milliseconds.
  wipe(state.storage.sql);
  // Far ahead of the wall clock: the platform's own alarm for this object never fires during the test.
  const world = new World(format, Date.now() + 86_400_000);
  const deps = { now: () => world.clock, random: () => 0.5, fetch: world.fetch, source: world.source };
  const real: Real = {
    object: new ChannelObject(state, env as unknown as Env, deps),
    restart() {
      this.object = new ChannelObject(state, env as unknown as Env, deps);
      return this.object;
    },
  };
  await fc.asyncModelRun(() => ({ model: world, real }), history);

  // Settle: every target back, the source announces its count, time moves on until nothing is due.
  for (const t of world.targets.values()) Object.assign(t, { down: false, failNext: 0 });
  world.sourceDown = false;
  await accept(real, world.bundle("heartbeat"));
  for (let i = 0; i < 40; i++) {
    world.clock += 120_000;
    await alarm(real);
    const s = await real.object.status(CHANNEL);
    if (s.pendingDeliveries === 0 && s.heldOutOfOrder === 0 && s.pendingGap === null) break;
  }
  world.clock += REPLAY_WINDOW_MS + 1;
  await alarm(real);

  const status = await real.object.status(CHANNEL);
  // What was recorded as unrecoverable: every event the source cannot return, and those whose recovery met an outage.
  const gapEvents = state.storage.sql
    .exec<{ from_event: number; to_event: number }>("SELECT from_event, to_event FROM gaps")
    .toArray()
    .flatMap((g) => Array.from({ length: g.to_event - g.from_event + 1 }, (_, i) => g.from_event + i))
    .sort((a, b) => a - b);
  const givenUp = new Set(gapEvents);
  expect(gapEvents.filter((n, i) => n < 1 || n > world.generated || gapEvents.indexOf(n) !== i), "gap events in range, once").toEqual([]);
  expect([...world.lost].filter((n) => !givenUp.has(n)), "lost events not recorded").toEqual([]);
  const expected: number[] = [];
  for (let n = 1; n <= world.generated; n++) if (!givenUp.has(n)) expected.push(n);
  for (const [name, target] of world.targets) {
    const ok = target.receipts.filter((r) => r.ok);
    const all: number[] = [];
    for (const r of ok) all.push(...eventNumbersOf(JSON.parse(await r.request.text())));
    const firstSeen = all.filter((n, i) => all.indexOf(n) === i);
    // First-seen order strictly increasing; every event not recorded as unrecoverable delivered, and only those.
    expect(firstSeen, `${name}: first-seen events`).toEqual(expected);
    // Nothing delivered that the source did not send.
    expect(all.filter((n) => n < 1 || n > world.generated || world.lost.has(n)), `${name}: foreign events`).toEqual([]);
    // Delivery sequence numbers never reused: strictly increasing over successful deliveries.
    expect(ok.every((r, i) => i === 0 || r.delivery > ok[i - 1]!.delivery), `${name}: delivery numbers increase`).toBe(true);
    // Standard Webhooks: every attempt of one delivery (retries, after restarts) carries webhook-id <channel>-<delivery>.
    const ids = target.receipts.map((r) => r.webhookId);
    expect(ids, `${name}: webhook-id per attempt`).toEqual(target.receipts.map((r) => (name === "model-a" ? `${CHANNEL}-${r.delivery}` : null)));
    const row = status.targets.find((t) => t.target.endsWith(`/${name}`));
    expect(row?.pending, `${name}: pending`).toBe(0);
    expect(row?.dropped, `${name}: dropped`).toBe(0);
  }
  // Counted; and with the source reachable throughout, only what it cannot return is given up.
  expect(status.unrecoverableEvents).toBe(gapEvents.length);
  if (!world.outageSeen) expect(gapEvents, "unrecoverable events").toEqual([...world.lost].sort((a, b) => a - b));
  expect(status.lastEventNumber).toBe(world.generated);
  // Storage back to empty once every target has everything and the replay window has passed.
  const left = state.storage.sql
    .exec<{ n: number; o: number; h: number }>(
      "SELECT (SELECT COUNT(*) FROM notifications) AS n, (SELECT COUNT(*) FROM outbox) AS o, (SELECT COUNT(*) FROM held_notifications) AS h",
    )
    .one();
  expect(left, "storage left").toEqual({ n: 0, o: 0, h: 0 });
}

describe("zero loss, over generated histories (strict sequencing, three targets)", () => {
  it(`every target ends with every event the source can return, in order; the rest is a counted gap; storage ends empty (${NUM_RUNS} histories of up to 60 commands)`, async () => {
    await runInDurableObject(CHANNELS.get(CHANNELS.idFromName("model")), (_instance, state) => fc.assert(
      fc.asyncProperty(fc.constantFrom<Format>("R5", "R4B", "R4"), fc.commands(commands, { maxCommands: 60 }), async (format, history) => {
        await runHistory(state, format, history);
      }),
      {
        numRuns: NUM_RUNS,
        ...(bindings.MODEL_SEED ? { seed: Number(bindings.MODEL_SEED) } : {}),
        ...(bindings.MODEL_PATH ? { path: bindings.MODEL_PATH } : {}),
        verbose: 1,
      },
    ));
  }, 120_000 + NUM_RUNS * 500);
});
