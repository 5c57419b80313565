/**
 * The relay's promise, end to end: nothing accepted with 200 is lost. The real Worker (under
 * wrangler, its Durable Object state persisted to a directory so that a restart keeps it)
 * relays 300 notifications in the three wire forms (one channel per form, the same three
 * targets) from a seeded plan of in-order events, duplicates, overlapping bundles, out-of-order
 * arrivals, heartbeats and events the edge never receives (known only to the source's
 * `$events`), with quiet periods in which every target catches up and the channel trims its
 * storage, one target failing 30% of attempts (seeded), one target down for a stretch, and two
 * restarts of the Worker. In the end every target has every event of every channel, first
 * arrivals in event order. Bounded polling throughout; nothing here asserts a speed.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { unstable_startWorker } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventNumbersOf, notification, type Format } from "../fixtures/notifications.ts";
import { startSubscriptionSource, type SubscriptionSource } from "../peers/subscription-source.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../peers/webhook-receiver.ts";
import { seededRandom } from "../fixtures/seeded-random.ts";
import { sleep, until } from "./support/poll.ts";

const SEED = Number(process.env.SOAK_SEED ?? 20261201);
const NOTIFICATIONS_PER_CHANNEL = 100;
const SECRET = "soak-channel-secret";
const ADMIN_KEY = "soak-admin-key";
const TARGETS = ["steady", "flaky", "outage"] as const;
const CHANNELS: ReadonlyArray<{ name: string; format: Format; fhirVersion: string; heartbeatPeriod?: number }> = [
  { name: "soak-r5", format: "R5", fhirVersion: "R5" },
  // One channel also has liveness on: silence makes it ask the source's $status.
  { name: "soak-r4b", format: "R4B", fhirVersion: "R4B", heartbeatPeriod: 2 },
  { name: "soak-r4", format: "R4", fhirVersion: "R4" },
];


/** One notification to send: its events (empty for a heartbeat), and how far the source has counted when it is sent. */
interface Send {
  channel: string;
  format: Format;
  kind: "handshake" | "heartbeat" | "event-notification";
  events: number[];
  sourceCount: number;
  what: "handshake" | "in-order" | "bundle" | "overlap" | "out-of-order" | "after-skip" | "duplicate" | "heartbeat";
}

/** A channel's plan: `NOTIFICATIONS_PER_CHANNEL` sends over events 1..last, some events never sent. */
function planChannel(channel: string, format: Format, random: () => number): { sends: Send[]; last: number } {
  const sends: Send[] = [{ channel, format, kind: "handshake", events: [], sourceCount: 0, what: "handshake" }];
  let n = 0;
  let skipped = false;
  const push = (events: number[], what: Send["what"], sourceCount = n) =>
    sends.push({ channel, format, kind: "event-notification", events, sourceCount, what: skipped ? "after-skip" : what });
  while (sends.length < NOTIFICATIONS_PER_CHANNEL) {
    const r = random();
    const sent = sends.filter((s) => s.kind === "event-notification");
    if (r < 0.08) {
      n += 1; // the source had event n; its notification never reaches the edge
      skipped = true;
      continue;
    }
    if (r < 0.16 && sent.length > 0) {
      const earlier = sent[Math.floor(random() * sent.length)]!;
      sends.push({ ...earlier, sourceCount: n, what: "duplicate" });
    } else if (r < 0.24 && sends.length < NOTIFICATIONS_PER_CHANNEL - 1) {
      n += 2;
      push([n], "out-of-order");
      skipped = false;
      push([n - 1], "out-of-order");
    } else if (r < 0.32) {
      n += 2;
      push([n - 1, n], "bundle");
    } else if (r < 0.38 && n > 0) {
      n += 1;
      push([n - 1, n], "overlap");
    } else if (r < 0.43) {
      sends.push({ channel, format, kind: "heartbeat", events: [], sourceCount: n, what: "heartbeat" });
    } else {
      n += 1;
      push([n], "in-order");
    }
    skipped = false;
  }
  return { sends, last: n };
}

/**
 * What happens between stretches of traffic, at a position in every channel's plan: the
 * channels send concurrently (each in its own order) up to the next position, then this runs.
 */
type Between = "quiet" | "restart" | "outage-starts" | "outage-ends";
const SCHEDULE: ReadonlyArray<readonly [number, Between]> = [
  [10, "quiet"],
  [25, "quiet"],
  [33, "outage-starts"],
  [50, "restart"],
  [63, "outage-ends"],
  [70, "quiet"],
  [80, "restart"],
  [92, "quiet"],
];

interface RunningEdge {
  url: URL;
  dispose(): Promise<void>;
}

/** The Worker from wrangler.toml with its Durable Object state in `persistDir`, so a new start sees the old state. */
async function startPersistedEdge(vars: Record<string, string>, persistDir: string): Promise<RunningEdge> {
  const worker = await unstable_startWorker({
    config: "./wrangler.toml",
    bindings: Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, { type: "plain_text" as const, value: v }])),
    dev: { server: { hostname: "127.0.0.1", port: 0 }, persist: persistDir, logLevel: "none", watch: false, inspector: false },
  });
  await worker.ready;
  return { url: await worker.url, dispose: () => worker.dispose() };
}

let receiver: WebhookReceiver;
let source: SubscriptionSource;
let edge: RunningEdge | undefined;
let persistDir: string;
let vars: Record<string, string>;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  source = await startSubscriptionSource();
  // In memory where the system has it (the state survives the Worker, not the machine); the disk otherwise.
  persistDir = await mkdtemp(path.join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "fhir-edge-soak-"));
  const channels = Object.fromEntries(
    CHANNELS.map((c) => [
      c.name,
      {
        source: "subs",
        topic: "http://hl7.org/SubscriptionTopic/admission",
        secret: "env:SOAK_SECRET",
        fhirVersion: c.fhirVersion,
        gapGracePeriod: 1,
        ...(c.heartbeatPeriod ? { heartbeatPeriod: c.heartbeatPeriod } : {}),
        targets: TARGETS.map((t) => ({ url: receiver.url(t), maxBackoff: 1 })),
      },
    ]),
  );
  vars = {
    ALLOW_INSECURE_HTTP: "true",
    ACCESS_LOG: "errors",
    PROXY_API_KEYS: `soak-admin:${ADMIN_KEY}`,
    PROXY_ADMIN_CLIENTS: "soak-admin",
    FHIR_SOURCE_SUBS: `fhir+${source.base}?retry_backoff_factor=0.01&max_attempts=2`,
    FHIR_CHANNELS: JSON.stringify(channels),
    SOAK_SECRET: SECRET,
  };
  for (const c of CHANNELS) source.setSubscription(c.name, { format: c.format, count: 0, eventsSupported: true });
  receiver.control("flaky", { failRatio: 0.3, seed: SEED, status: 503 });
  edge = await startPersistedEdge(vars, persistDir);
});

afterAll(async () => {
  await edge?.dispose();
  await receiver?.close();
  await source?.close();
  if (persistDir) await rm(persistDir, { recursive: true, force: true });
});

async function post(send: Send): Promise<Response> {
  const subscription = `${source.base}/Subscription/${send.channel}`;
  const body = notification(send.format, send.kind, { subscription, events: send.events, eventsSinceSubscriptionStart: send.kind === "event-notification" ? Math.max(...send.events) : send.sourceCount, base: source.base });
  return fetch(new URL(`/webhooks/${send.channel}`, edge!.url), {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json", "X-Api-Key": SECRET },
    body: JSON.stringify(body),
  });
}

interface ChannelState {
  name: string;
  pendingDeliveries?: number;
  heldOutOfOrder?: number;
}

async function channelStates(): Promise<ChannelState[]> {
  const res = await fetch(new URL("/status", edge!.url), { headers: { "X-Api-Key": ADMIN_KEY } });
  if (!res.ok) return [];
  const status = (await res.json()) as { channels?: ChannelState[] };
  return (status.channels ?? []).filter((c) => c.name.startsWith("soak-"));
}

/**
 * A quiet period: no notifications until every channel has delivered everything and holds
 * nothing (bounded: a channel that never settles gets a 12 s pause instead), then a little
 * more so the alarm has run and trimmed.
 */
async function quietPeriod(): Promise<void> {
  await until(async () => {
    const states = await channelStates();
    return states.length === CHANNELS.length && states.every((c) => c.pendingDeliveries === 0 && c.heldOutOfOrder === 0);
  }, { timeoutMs: 12_000, everyMs: 300 });
  await sleep(500);
}

/** The event numbers a target received successfully for a channel, first arrivals only, in arrival order. */
function firstArrivals(target: string, channel: string): number[] {
  const seen = new Set<number>();
  const order: number[] = [];
  for (const d of receiver.deliveries(target)) {
    if (!d.ok || d.headers["x-fhir-edge-channel"] !== channel) continue;
    for (const n of eventNumbersOf(JSON.parse(d.body))) {
      if (seen.has(n)) continue;
      seen.add(n);
      order.push(n);
    }
  }
  return order;
}

describe("subscription relay soak: every event accepted reaches every target, in order", () => {
  it(
    `3 x ${NOTIFICATIONS_PER_CHANNEL} notifications, three wire forms, quiet periods, duplicates, out-of-order, $events gaps, a flaky and a down target, two restarts (seed ${SEED}; replay with SOAK_SEED)`,
    async () => {
      const random = seededRandom(SEED);
      const plans = CHANNELS.map((c) => planChannel(c.name, c.format, random));
      expect(plans.map((p) => p.sends.length)).toEqual(CHANNELS.map(() => NOTIFICATIONS_PER_CHANNEL));
      const lastOf = new Map(CHANNELS.map((c, i) => [c.name, plans[i]!.last]));
      // The plan covers every kind of arrival at least once per channel.
      for (const plan of plans) for (const what of ["duplicate", "out-of-order", "after-skip", "overlap", "bundle", "heartbeat"]) expect(plan.sends.some((s) => s.what === what), `${what} in plan`).toBe(true);

      const refused: string[] = [];
      const sendRange = async (sends: Send[], from: number, to: number) => {
        for (let i = from; i < to; i++) {
          const send = sends[i]!;
          source.setSubscription(send.channel, { count: send.sourceCount });
          const res = await post(send);
          if (res.status !== 200) refused.push(`${send.channel} #${i} ${send.what} [${send.events}]: ${res.status} ${await res.text()}`);
          else await res.body?.cancel();
        }
      };
      let at = 0;
      for (const [position, between] of SCHEDULE) {
        await Promise.all(plans.map((p) => sendRange(p.sends, at, position)));
        at = position;
        if (between === "quiet") await quietPeriod();
        else if (between === "outage-starts") receiver.control("outage", { down: true });
        else if (between === "outage-ends") receiver.control("outage", { down: false });
        else {
          await edge!.dispose();
          edge = await startPersistedEdge(vars, persistDir);
        }
      }
      await Promise.all(plans.map((p) => sendRange(p.sends, at, NOTIFICATIONS_PER_CHANNEL)));
      expect(refused).toEqual([]);

      // The source has counted every event; a last heartbeat per channel announces the tail,
      // whose missing events only $events can return.
      for (const c of CHANNELS) {
        source.setSubscription(c.name, { count: lastOf.get(c.name)! });
        const res = await post({ channel: c.name, format: c.format, kind: "heartbeat", events: [], sourceCount: lastOf.get(c.name)!, what: "heartbeat" });
        expect(res.status).toBe(200);
      }

      const expected = (channel: string) => Array.from({ length: lastOf.get(channel)! }, (_, k) => k + 1);
      const complete = () => CHANNELS.every((c) => TARGETS.every((t) => firstArrivals(t, c.name).length >= lastOf.get(c.name)!));
      await until(complete, { timeoutMs: 30_000, everyMs: 250 });

      const missing: string[] = [];
      for (const c of CHANNELS) {
        for (const t of TARGETS) {
          const got = firstArrivals(t, c.name);
          const lost = expected(c.name).filter((n) => !got.includes(n));
          if (lost.length > 0) missing.push(`${c.name} -> ${t}: ${lost.length} of ${lastOf.get(c.name)} never delivered (${lost.slice(0, 12).join(", ")}${lost.length > 12 ? ", ..." : ""})`);
        }
      }
      expect(missing, `events never delivered (seed ${SEED})`).toEqual([]);
      for (const c of CHANNELS) for (const t of TARGETS) expect(firstArrivals(t, c.name), `${c.name} -> ${t}: first arrivals in event order (seed ${SEED})`).toEqual(expected(c.name));
      // The failing targets did fail along the way, so the retries were exercised.
      expect(receiver.deliveries("flaky").some((d) => !d.ok)).toBe(true);
      expect(receiver.deliveries("outage").some((d) => !d.ok)).toBe(true);
    },
    170_000,
  );
});
