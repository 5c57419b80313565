import { DurableObject } from "cloudflare:workers";
import type { ChannelConfig } from "../../config/channel.ts";
import { edgeConfig } from "../../config/edge-config.ts";
import type { EdgeBindings } from "../../context.ts";
import { Inbox } from "../inbox.ts";
import type { Notification } from "../notification.ts";
import { pumpTarget, targetsDue } from "./fan-out.ts";
import { storeFeed } from "./inbox-feed.ts";
import { applyNotification } from "./intake.ts";
import { checkLiveness, gapDue, recoverGap, type RecoveryContext } from "./recovery.ts";
import { channelStatus } from "./report.ts";
import { sourceGet, type SourceGet } from "./source-client.ts";
import { ChannelStore } from "./store.ts";
import type { AcceptResult, ChannelStatus } from "./types.ts";
import { nextAlarmAt, sweep } from "./upkeep.ts";

export type { AcceptResult, ChannelStatus, TargetStatus } from "./types.ts";

/** The I/O of a channel object, passed in so tests move time and answer requests themselves. */
export interface ChannelDeps {
  now: () => number;
  random: () => number;
  /** Deliveries to targets. */
  fetch: (request: Request) => Promise<Response>;
  /** Calls to the channel's source (`$events`, `$status`). */
  source: SourceGet;
  /** Asks for the alarm to run at `at` (or earlier, if one is set earlier and not past). */
  setAlarm: (at: number, now: number) => Promise<void>;
}

/**
 * One per channel (named by it): keeps the event sequence, holds out-of-order
 * events, recovers gaps through `$events`, and fans every event out to every
 * target in order, at least once. Wiring only: the sequencer decides, the
 * store keeps (every notification and its outbox rows are stored in one
 * transaction before `accept` returns), the deliverer posts. Deliveries and
 * retries run from alarms, written so that running twice is harmless. It
 * also serves the channel's WebSocket inbox (Hibernation API), whose state
 * lives in the sockets' attachments.
 * @see docs/storage.md, docs/inbox.md
 */
export class ChannelObject extends DurableObject<Env> {
  readonly #store: ChannelStore;
  readonly #deps: ChannelDeps;
  readonly #pumps = new Map<string, Promise<void>>();
  readonly #inbox: Inbox;

  constructor(ctx: DurableObjectState, env: Env, deps: Partial<ChannelDeps> = {}) {
    super(ctx, env);
    this.#deps = {
      now: Date.now,
      random: Math.random,
      fetch: (r) => fetch(r),
      source: sourceGet(env as unknown as EdgeBindings),
      setAlarm: async (at, now) => {
        const current = await ctx.storage.getAlarm();
        if (current === null || current > at || current < now) await ctx.storage.setAlarm(at);
      },
      ...deps,
    };
    // Synchronous SQLite: the migrations finish before any request or alarm reaches the object.
    this.#store = new ChannelStore(ctx.storage, this.#deps.now());
    this.#inbox = new Inbox(
      ctx,
      (name) => {
        const channel = this.#channel(name);
        return channel && storeFeed(this.#store, channel.sequencing);
      },
      { now: this.#deps.now },
    );
  }

  /** Stores one notification durably (with one pending row per target) and answers what became of its events. */
  async accept(channelName: string, notification: Notification, body: string): Promise<AcceptResult> {
    const channel = this.#channel(channelName);
    if (!channel) return { ok: false, code: "channel-not-found", message: `Channel ${channelName} is not configured` };
    const result = this.#store.transaction(() => applyNotification(this.#store, channel, notification, body, this.#deps.now()));
    await this.#schedule(channel);
    if (result.ok && result.stored > 0) this.#kick(channel);
    this.#inbox.flush();
    return result;
  }

  /** `GET /channels/<channel>/ws`, forwarded by the route once it has authorised the client. */
  override async fetch(request: Request): Promise<Response> {
    return this.#inbox.connect(request);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    this.#inbox.message(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.#inbox.close(ws, code, reason);
  }

  /** Records the Subscription id `register` created at the source, for `$events` and `$status`. */
  async setSubscription(channelName: string, subscriptionId: string): Promise<void> {
    const now = this.#deps.now();
    this.#store.transaction(() =>
      this.#store.updateState({ channel: channelName, subscriptionId, lastNotificationAt: this.#store.state().lastNotificationAt ?? now }),
    );
    const channel = this.#channel(channelName);
    if (channel) await this.#schedule(channel);
  }

  async subscriptionId(): Promise<string | null> {
    return this.#store.state().subscriptionId;
  }

  /** For `/status`: sequence, gaps, replay reach and each target's cursor, never a body. */
  async status(channelName: string): Promise<ChannelStatus> {
    const channel = this.#channel(channelName);
    if (channel) this.#store.transaction(() => this.#store.ensureTargets(channel.targets.map((t) => t.url), this.#deps.now()));
    return channelStatus(this.#store, channel, this.#inbox.subscribers());
  }

  /**
   * Notifications after `since` still in the replay window, delivered or not,
   * oldest first: `since` is an event number under strict sequencing, a
   * delivery sequence number otherwise.
   */
  async events(channelName: string, since: number): Promise<string[]> {
    return this.#store.notificationsAfter(since, this.#channel(channelName)?.sequencing === "strict" ? "event" : "delivery");
  }

  /** Resolves once no delivery is in flight (tests; a drain before shutdown). */
  async idle(): Promise<void> {
    while (this.#pumps.size > 0) await Promise.allSettled([...this.#pumps.values()]);
  }

  /** Gap recovery, liveness, retention, deliveries and retries: at-least-once, and harmless twice. */
  override async alarm(): Promise<void> {
    const channel = this.#channel(this.#store.state().channel);
    if (!channel) return;
    this.#store.transaction(() => this.#store.ensureTargets(channel.targets.map((t) => t.url), this.#deps.now()));
    const recovery = this.#recoveryContext(channel);
    const gap = gapDue(this.#store, channel, this.#deps.now());
    if (gap) await recoverGap(recovery, gap);
    await checkLiveness(recovery);
    // Before the sweep: what recovery released reaches open sockets even when the replay window is 0.
    this.#inbox.flush();
    sweep(this.#store, channel, this.#deps.now());
    this.#kick(channel);
    await this.idle();
    await this.#schedule(channel);
  }

  #channel(name: string | null | undefined): ChannelConfig | undefined {
    return name ? edgeConfig(this.env).channels.get(name) : undefined;
  }

  #recoveryContext(channel: ChannelConfig): RecoveryContext {
    return { store: this.#store, channel, source: edgeConfig(this.env).sources.get(channel.source), get: this.#deps.source, now: this.#deps.now };
  }

  /** Starts a pass for every target with something pending and no backoff running, unless one is already under way. */
  #kick(channel: ChannelConfig): void {
    for (const target of targetsDue(this.#store, channel, this.#deps.now())) {
      if (this.#pumps.has(target.url)) continue;
      const pass = pumpTarget(this.#store, channel, target, this.#deps)
        .then(() => this.#schedule(channel))
        .finally(() => this.#pumps.delete(target.url));
      this.#pumps.set(target.url, pass);
    }
  }

  async #schedule(channel: ChannelConfig): Promise<void> {
    const now = this.#deps.now();
    const at = nextAlarmAt(this.#store, channel, now);
    if (at !== undefined) await this.#deps.setAlarm(at, now);
  }
}
