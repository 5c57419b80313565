import { DurableObject } from "cloudflare:workers";
import { credentialsFor } from "../auth/upstream/index.ts";
import type { ChannelConfig, TargetConfig } from "../config/channel.ts";
import { edgeConfig } from "../config/edge-config.ts";
import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { defaultDeps, forward } from "../proxy/forward.ts";
import { upstreamRequestHeaders } from "../proxy/headers.ts";
import { fetchWithTimeout } from "../fetch-with-timeout.ts";
import { CHANNEL_SCHEMA } from "./channel-schema.ts";
import { parseNotification, parseStatusResponse, type Notification } from "./notification.ts";
import { classifyEvents, countGap, deliveryBackoff, type EventRange } from "./sequence.ts";
import { signBody } from "./signature.ts";
import { addStandardWebhookHeaders } from "./standard-webhooks.ts"; // inbox-wiring
import { Inbox, type SubscriberStatus } from "./inbox.ts"; // inbox-wiring
import { deliveriesFeed } from "./inbox-feed.ts"; // inbox-wiring
import { sliceNotification } from "./slice.ts";

/** What `accept` answers the intake route; never throws across RPC. */
export type AcceptResult =
  | { ok: true; stored: number; duplicates: number; held: number }
  | { ok: false; code: string; message: string };

export interface TargetStatus {
  target: string;
  /** The delivery sequence number the target has, and the highest event number in it. */
  cursor: number;
  lastEvent: number | null;
  delivered: number;
  failures: number;
  nextAttemptAt: string | null;
  lastStatus: string | null;
  /** Deliveries dropped by the retention limit before this target got them. */
  dropped: number;
}

export interface ChannelStatus {
  subscriptionId: string | null;
  lastEventNumber: number;
  handshakeAt: string | null;
  heartbeatAt: string | null;
  lastNotificationAt: string | null;
  pendingDeliveries: number;
  heldOutOfOrder: number;
  gaps: Array<{ from: number; to: number; outcome: string; at: string }>;
  targets: TargetStatus[];
  /** Open WebSocket inbox connections and their acked positions. */
  subscribers: SubscriberStatus[]; // inbox-wiring
}

const DELIVERY_TIMEOUT_MS = 10_000;
/** Deliveries one target gets in one pass before the object yields. */
const PUMP_BATCH = 200;
const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : null);

/** Where a target URL is shown (status, logs): origin and path, never a query that may hold a key. */
function showTarget(url: string): string {
  const u = new URL(url);
  return u.origin + u.pathname;
}

/**
 * One per channel (named by it): keeps the event sequence, holds out-of-order
 * events, recovers gaps through `$events`, and fans every event out to every
 * target in order, at least once. Everything accepted is in SQLite storage
 * before `accept` returns; delivery and retries run from alarms, written so
 * that running twice is harmless.
 * @see docs/relay.md
 */
export class ChannelObject extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  readonly #pumps = new Map<string, Promise<void>>();
  /** The channel configuration whose targets have rows already (see #ensureTargets). */
  #ensuredFor: ChannelConfig | undefined;
  // inbox-wiring: the WebSocket inbox; its state lives in the sockets' attachments.
  readonly #inbox = new Inbox(this.ctx, (name) => {
    const channel = this.#channel(name);
    return channel && deliveriesFeed(this.ctx.storage.sql, channel.sequencing === "strict", () => this.#lastEvent());
  });

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.#sql.exec(CHANNEL_SCHEMA);
    });
  }

  // ---------------------------------------------------------------- RPC

  /** Stores one notification durably and answers what became of its events. */
  async accept(channelName: string, notification: Notification, body: string): Promise<AcceptResult> {
    const channel = this.#channel(channelName);
    if (!channel) return { ok: false, code: "channel-not-found", message: `Channel ${channelName} is not configured` };
    const now = Date.now();
    this.#ensureTargets(channel);
    this.#set("lastNotificationAt", now);
    if (notification.subscriptionId) this.#set("subscriptionId", notification.subscriptionId);

    let result: AcceptResult = { ok: true, stored: 0, duplicates: 0, held: 0 };
    switch (notification.type) {
      case "handshake":
        this.#set("handshakeAt", now);
        if (this.#get("lastEvent") === undefined && notification.eventsSinceSubscriptionStart !== undefined) {
          this.#set("lastEvent", notification.eventsSinceSubscriptionStart);
        }
        break;
      case "heartbeat":
      case "query-status":
        this.#set("heartbeatAt", now);
        if (channel.sequencing === "strict") this.#noteGap(countGap(this.#lastEvent(), notification.eventsSinceSubscriptionStart), now);
        break;
      default:
        result = this.#acceptEvents(channel, notification, body, now);
    }
    await this.#scheduleAlarm(channel, now);
    if (result.ok && result.stored > 0) this.#kick(channel);
    this.#inbox.flush(); // inbox-wiring
    return result;
  }

  // inbox-wiring: GET /channels/<channel>/ws, forwarded by the route once it has authorised the client.
  override async fetch(request: Request): Promise<Response> {
    return this.#inbox.connect(request);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    this.#inbox.message(ws, message);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.#inbox.close(ws, code, reason);
  }
  // end inbox-wiring

  /** Records the Subscription id `register` created at the source, for `$events` and `$status`. */
  async setSubscription(channelName: string, subscriptionId: string): Promise<void> {
    this.#set("channel", channelName);
    this.#set("subscriptionId", subscriptionId);
    if (this.#get("lastNotificationAt") === undefined) this.#set("lastNotificationAt", Date.now());
    const channel = this.#channel(channelName);
    if (channel) await this.#scheduleAlarm(channel, Date.now());
  }

  async subscriptionId(): Promise<string | null> {
    return this.#get("subscriptionId") ?? null;
  }

  /** For `/status`: sequence, gaps and each target's cursor, never a body. */
  async status(channelName: string): Promise<ChannelStatus> {
    const channel = this.#channel(channelName);
    if (channel) this.#ensureTargets(channel);
    const configured = new Set(channel?.targets.map((t) => t.url) ?? []);
    const targets = this.#sql
      .exec<{ url: string; cursor: number; failures: number; next_attempt_at: number; last_status: string | null; delivered: number; dropped: number }>(
        "SELECT url, cursor, failures, next_attempt_at, last_status, delivered, dropped FROM targets ORDER BY url",
      )
      .toArray()
      .filter((t) => configured.has(t.url))
      .map((t) => ({
        target: showTarget(t.url),
        cursor: t.cursor,
        lastEvent: this.#sql.exec<{ e: number | null }>("SELECT MAX(last_event) AS e FROM deliveries WHERE seq <= ?", t.cursor).one().e ?? this.#num("trimmedEventFloor") ?? null,
        delivered: t.delivered,
        failures: t.failures,
        nextAttemptAt: t.failures > 0 ? iso(t.next_attempt_at) : null,
        lastStatus: t.last_status,
        dropped: t.dropped,
      }));
    return {
      subscriptionId: this.#get("subscriptionId") ?? null,
      lastEventNumber: this.#lastEvent(),
      handshakeAt: iso(this.#num("handshakeAt")),
      heartbeatAt: iso(this.#num("heartbeatAt")),
      lastNotificationAt: iso(this.#num("lastNotificationAt")),
      pendingDeliveries: this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries").one().n,
      heldOutOfOrder: this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM held").one().n,
      gaps: this.#sql
        .exec<{ from_event: number; to_event: number; outcome: string; at: number }>("SELECT * FROM gaps ORDER BY at DESC LIMIT 20")
        .toArray()
        .map((g) => ({ from: g.from_event, to: g.to_event, outcome: g.outcome, at: iso(g.at)! })),
      targets,
      subscribers: this.#inbox.subscribers(), // inbox-wiring
    };
  }

  /**
   * Retained notifications after `since` (an event number under strict
   * sequencing, a delivery sequence number otherwise), oldest first.
   */
  async events(channelName: string, since: number): Promise<string[]> {
    const channel = this.#channel(channelName);
    const rows =
      channel?.sequencing === "strict"
        ? this.#sql.exec<{ body: string }>("SELECT body FROM deliveries WHERE last_event > ? ORDER BY seq", since)
        : this.#sql.exec<{ body: string }>("SELECT body FROM deliveries WHERE seq > ? ORDER BY seq", since);
    return rows.toArray().map((r) => r.body);
  }

  /** Delivery, retries, gap recovery, liveness and retention: at-least-once, idempotent. */
  override async alarm(): Promise<void> {
    const channel = this.#channel(this.#get("channel"));
    if (!channel) return;
    const now = Date.now();
    this.#ensureTargets(channel);
    if (channel.sequencing === "strict") {
      const gap = this.#pendingGap();
      const since = this.#num("gapSince");
      if (gap && since !== undefined && now >= since + channel.gapGraceMs) await this.#recover(channel, gap);
    }
    await this.#checkLiveness(channel, now);
    this.#enforceRetention(channel, now);
    this.#inbox.flush(); // inbox-wiring: what recovery released, and stalled clients' cut-off
    this.#kick(channel);
    await Promise.allSettled([...this.#pumps.values()]);
    this.#trim(channel);
    await this.#scheduleAlarm(channel, Date.now());
  }

  // ---------------------------------------------------------------- intake

  #acceptEvents(channel: ChannelConfig, notification: Notification, body: string, now: number): AcceptResult {
    const events = notification.events;
    if (channel.sequencing === "none") {
      this.#store(null, null, body, now);
      return { ok: true, stored: Math.max(1, events.length), duplicates: 0, held: 0 };
    }
    if (channel.sequencing === "per-bundle") {
      const fresh = events.filter((e) => this.#sql.exec("SELECT 1 FROM seen_keys WHERE key = ?", e.key).toArray().length === 0);
      if (events.length > 0 && fresh.length === 0) return { ok: true, stored: 0, duplicates: events.length, held: 0 };
      for (const e of fresh) this.#sql.exec("INSERT OR IGNORE INTO seen_keys (key, at) VALUES (?, ?)", e.key, now);
      this.#store(null, null, body, now);
      return { ok: true, stored: fresh.length || 1, duplicates: events.length - fresh.length, held: 0 };
    }

    let numbers = events.map((e) => e.eventNumber);
    if (numbers.some((n) => n === undefined)) {
      // The backport allows an event without a number when the bundle holds one event:
      // its number is then eventsSinceSubscriptionStart.
      if (events.length === 1 && notification.eventsSinceSubscriptionStart !== undefined) numbers = [notification.eventsSinceSubscriptionStart];
      else
        return {
          ok: false,
          code: "missing-event-number",
          message: `Channel ${channel.name} uses strict sequencing, but an event has no eventNumber (use sequencing "per-bundle" or "none" for such servers)`,
        };
    }
    if (numbers.length === 0) return { ok: true, stored: 0, duplicates: 0, held: 0 };
    const intake = classifyEvents(this.#lastEvent(), numbers as number[]);
    switch (intake.kind) {
      case "duplicate":
        return { ok: true, stored: 0, duplicates: numbers.length, held: 0 };
      case "deliver":
        this.#store(intake.first, intake.last, this.#sliced(body, intake.seen), now);
        this.#set("lastEvent", intake.last);
        this.#releaseHeld(now);
        return { ok: true, stored: intake.last - intake.first + 1, duplicates: intake.seen.length, held: 0 };
      case "hold":
        this.#sql.exec(
          "INSERT OR IGNORE INTO held (first_event, last_event, seen, body, received_at) VALUES (?, ?, ?, ?, ?)",
          intake.first,
          intake.last,
          JSON.stringify(intake.seen),
          body,
          now,
        );
        this.#noteGap(intake.gap, now);
        return { ok: true, stored: 0, duplicates: intake.seen.length, held: intake.last - intake.first + 1 };
    }
  }

  #sliced(body: string, seen: readonly number[]): string {
    if (seen.length === 0) return body;
    return JSON.stringify(sliceNotification(JSON.parse(body) as Record<string, unknown>, new Set(seen)));
  }

  #store(first: number | null, last: number | null, body: string, now: number): void {
    this.#sql.exec("INSERT INTO deliveries (first_event, last_event, body, received_at) VALUES (?, ?, ?, ?)", first, last, body, now);
  }

  /** Moves held bundles that now continue the sequence into delivery, in event order. */
  #releaseHeld(now: number): void {
    for (;;) {
      const row = this.#sql
        .exec<{ first_event: number; last_event: number; body: string }>("SELECT first_event, last_event, body FROM held ORDER BY first_event LIMIT 1")
        .toArray()[0];
      const last = this.#lastEvent();
      if (!row || row.first_event > last + 1) break;
      this.#sql.exec("DELETE FROM held WHERE first_event = ?", row.first_event);
      if (row.last_event <= last) continue;
      const seen: number[] = [];
      for (let n = row.first_event; n <= last; n++) seen.push(n);
      this.#store(last + 1, row.last_event, this.#sliced(row.body, seen), now);
      this.#set("lastEvent", row.last_event);
    }
    const gap = this.#pendingGap();
    if (!gap) {
      this.#del("gapSince");
      this.#del("gapTo");
    }
  }

  // ---------------------------------------------------------------- gaps

  #noteGap(gap: EventRange | undefined, now: number): void {
    if (!gap) return;
    this.#set("gapTo", Math.max(gap.to, this.#num("gapTo") ?? 0));
    if (this.#num("gapSince") === undefined) this.#set("gapSince", now);
  }

  /** The missing range after `lastEvent`: up to the first held event, or to what a heartbeat announced. */
  #pendingGap(): EventRange | undefined {
    const last = this.#lastEvent();
    const firstHeld = this.#sql.exec<{ f: number | null }>("SELECT MIN(first_event) AS f FROM held").one().f;
    const announced = this.#num("gapTo");
    const to = firstHeld !== null ? firstHeld - 1 : (announced ?? last);
    return to > last ? { from: last + 1, to } : undefined;
  }

  /**
   * Fills a gap from the source's `Subscription/<id>/$events`, through the
   * source's own authenticated, retrying client. What it returns is delivered
   * before the held events; what it cannot return is recorded as a gap and
   * delivery goes on.
   * @see https://hl7.org/fhir/R5/subscription-operation-events.html
   */
  async #recover(channel: ChannelConfig, gap: EventRange): Promise<void> {
    const now = Date.now();
    const subscriptionId = this.#get("subscriptionId");
    const source = edgeConfig(this.env).sources.get(channel.source);
    let outcome: string;
    if (!subscriptionId || !source) {
      outcome = subscriptionId ? "source misconfigured" : "no subscription id known";
    } else {
      outcome = await this.#fetchEvents(source, subscriptionId, gap, now);
    }
    if (this.#lastEvent() < gap.to) {
      this.#sql.exec("INSERT INTO gaps (from_event, to_event, outcome, at) VALUES (?, ?, ?, ?)", Math.max(gap.from, this.#lastEvent() + 1), gap.to, outcome, now);
      this.#set("lastEvent", gap.to);
    }
    this.#del("gapSince");
    this.#del("gapTo");
    this.#releaseHeld(now);
    if (this.#pendingGap()) this.#set("gapSince", now);
  }

  async #fetchEvents(source: SourceConfig, subscriptionId: string, gap: EventRange, now: number): Promise<string> {
    const url = `${source.baseUrl}/Subscription/${encodeURIComponent(subscriptionId)}/$events?eventsSinceNumber=${gap.from}&eventsUntilNumber=${gap.to}`;
    let text: string;
    let status: number;
    try {
      const { response } = await this.#upstreamGet(source, url);
      status = response.status;
      text = await response.text();
    } catch {
      return "$events unreachable";
    }
    if (status < 200 || status >= 300) return `$events unsupported or failed (HTTP ${status})`;
    let parsedBody: unknown;
    try {
      parsedBody = JSON.parse(text);
    } catch {
      return "$events answer is not JSON";
    }
    const parsed = parseNotification(parsedBody);
    if (!parsed.ok) return `$events answer is not a notification bundle (${parsed.error})`;
    const numbers = parsed.value.events.map((e) => e.eventNumber).filter((n): n is number => n !== undefined && n >= gap.from && n <= gap.to);
    if (numbers.length === 0) return "$events returned none of the missing events";
    const outside = parsed.value.events.map((e) => e.eventNumber).filter((n): n is number => n !== undefined && (n < gap.from || n > gap.to));
    const body = outside.length > 0 ? JSON.stringify(sliceNotification(parsedBody as Record<string, unknown>, new Set(outside))) : text;
    const sorted = [...new Set(numbers)].sort((a, b) => a - b);
    // Missing numbers before the first recovered one are recorded as a gap of their own.
    if (sorted[0]! > gap.from) {
      this.#sql.exec("INSERT INTO gaps (from_event, to_event, outcome, at) VALUES (?, ?, ?, ?)", gap.from, sorted[0]! - 1, "$events did not return these events", now);
    }
    this.#store(sorted[0]!, sorted[sorted.length - 1]!, body, now);
    this.#set("lastEvent", sorted[sorted.length - 1]!);
    return sorted.length === gap.to - gap.from + 1 ? "recovered" : "$events returned only part of the range";
  }

  async #upstreamGet(source: SourceConfig, url: string) {
    const env = this.env as unknown as EdgeBindings;
    const credentials = credentialsFor(source, env);
    const requestId = crypto.randomUUID();
    return forward(
      {
        sourceName: source.name,
        method: "GET",
        url,
        headers: async () => upstreamRequestHeaders(new Headers({ Accept: "application/fhir+json" }), source.headers, await credentials.authorization(), requestId),
        body: null,
        retryable: true,
        retry: source.retry,
        timeoutMs: source.timeoutMs,
      },
      defaultDeps,
    );
  }

  /**
   * No notification of any kind within `heartbeatPeriod` x 2: ask the source's
   * `$status`; an `eventsSinceSubscriptionStart` beyond what arrived is a gap,
   * recovered at once.
   * @see https://hl7.org/fhir/R5/subscription-operation-status.html
   */
  async #checkLiveness(channel: ChannelConfig, now: number): Promise<void> {
    if (!channel.heartbeatPeriod) return;
    const window = channel.heartbeatPeriod * 2000;
    const last = Math.max(this.#num("lastNotificationAt") ?? 0, this.#num("livenessCheckedAt") ?? 0);
    if (last === 0 || now < last + window) return;
    this.#set("livenessCheckedAt", now);
    const subscriptionId = this.#get("subscriptionId");
    const source = edgeConfig(this.env).sources.get(channel.source);
    if (!subscriptionId || !source) {
      this.#set("livenessResult", "silent; no subscription id to ask $status");
      return;
    }
    try {
      const { response } = await this.#upstreamGet(source, `${source.baseUrl}/Subscription/${encodeURIComponent(subscriptionId)}/$status`);
      const body = response.ok ? ((await response.json()) as unknown) : (await response.body?.cancel(), undefined);
      const count = parseStatusResponse(body);
      this.#set("livenessResult", response.ok ? `$status answered (events since start: ${count ?? "unknown"})` : `$status failed (HTTP ${response.status})`);
      if (channel.sequencing === "strict") {
        const gap = countGap(this.#lastEvent(), count);
        if (gap) {
          this.#noteGap(gap, now);
          await this.#recover(channel, this.#pendingGap() ?? gap);
        }
      }
    } catch {
      this.#set("livenessResult", "$status unreachable");
    }
  }

  // ---------------------------------------------------------------- fan-out

  #ensureTargets(channel: ChannelConfig): void {
    // Once per instance and configuration: target rows are never deleted, and a new deployment is a new instance.
    if (this.#ensuredFor === channel) return;
    this.#ensuredFor = channel;
    this.#set("channel", channel.name);
    const maxSeq = this.#sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM deliveries").one().m ?? 0;
    for (const t of channel.targets) {
      // A target added later starts with the next event; replay covers history.
      this.#sql.exec("INSERT OR IGNORE INTO targets (url, cursor) VALUES (?, ?)", t.url, maxSeq);
    }
  }

  /** Starts a pump for every target that is not already being served and not waiting out a backoff. */
  #kick(channel: ChannelConfig): void {
    const now = Date.now();
    for (const target of channel.targets) {
      if (this.#pumps.has(target.url)) continue;
      const row = this.#sql.exec<{ next_attempt_at: number }>("SELECT next_attempt_at FROM targets WHERE url = ?", target.url).toArray()[0];
      if (!row || row.next_attempt_at > now) continue;
      const pump = this.#pump(channel, target).finally(() => this.#pumps.delete(target.url));
      this.#pumps.set(target.url, pump);
    }
  }

  /** Delivers a target's pending notifications in order until it is caught up or fails. */
  async #pump(channel: ChannelConfig, target: TargetConfig): Promise<void> {
    for (let i = 0; i < PUMP_BATCH; i++) {
      const cursor = this.#sql.exec<{ cursor: number }>("SELECT cursor FROM targets WHERE url = ?", target.url).one().cursor;
      const next = this.#sql.exec<{ seq: number; body: string; first_event: number | null; last_event: number | null }>(
        "SELECT seq, body, first_event, last_event FROM deliveries WHERE seq > ? ORDER BY seq LIMIT 1",
        cursor,
      ).toArray()[0];
      if (!next) return;
      const status = await this.#deliver(channel, target, next);
      if (status >= 200 && status < 300) {
        this.#sql.exec(
          "UPDATE targets SET cursor = MAX(cursor, ?), failures = 0, next_attempt_at = 0, last_status = ?, delivered = delivered + 1 WHERE url = ?",
          next.seq,
          String(status),
          target.url,
        );
        continue;
      }
      const failures = this.#sql.exec<{ failures: number }>("SELECT failures FROM targets WHERE url = ?", target.url).one().failures + 1;
      const at = Date.now() + deliveryBackoff(failures, target.maxBackoffMs, Math.random);
      this.#sql.exec(
        "UPDATE targets SET failures = ?, next_attempt_at = ?, last_status = ? WHERE url = ?",
        failures,
        at,
        status === 0 ? "unreachable" : String(status),
        target.url,
      );
      const current = await this.ctx.storage.getAlarm();
      if (current === null || current > at) await this.ctx.storage.setAlarm(at);
      return;
    }
    await this.ctx.storage.setAlarm(Date.now());
  }

  /** One POST of a stored notification Bundle; the HTTP status, or 0 when the target could not be reached. */
  async #deliver(channel: ChannelConfig, target: TargetConfig, row: { seq: number; body: string; first_event: number | null; last_event: number | null }): Promise<number> {
    const headers = new Headers({ "Content-Type": "application/fhir+json; charset=utf-8" });
    for (const [name, value] of target.headers) headers.set(name, value);
    headers.set("X-Fhir-Edge-Channel", channel.name);
    headers.set("X-Fhir-Edge-Delivery", String(row.seq));
    if (row.first_event !== null && row.last_event !== null) headers.set("X-Fhir-Edge-Events", `${row.first_event}-${row.last_event}`);
    if (target.signingSecret) headers.set("X-Fhir-Edge-Signature", await signBody(row.body, target.signingSecret));
    await addStandardWebhookHeaders(headers, { channel: channel.name, seq: row.seq, body: row.body }, target.signingSecrets, Date.now()); // inbox-wiring: Standard Webhooks
    try {
      const response = await fetchWithTimeout(target.url, { method: "POST", headers, body: row.body, redirect: "manual" }, DELIVERY_TIMEOUT_MS);
      await response.body?.cancel();
      return response.status;
    } catch {
      return 0;
    }
  }

  // ---------------------------------------------------------------- storage upkeep

  /** Deletes what every configured target has. */
  #trim(channel: ChannelConfig): void {
    const urls = channel.targets.map((t) => t.url);
    if (urls.length === 0) return;
    const placeholders = urls.map(() => "?").join(",");
    const min = this.#sql.exec<{ m: number | null }>(`SELECT MIN(cursor) AS m FROM targets WHERE url IN (${placeholders})`, ...urls).one().m;
    if (min === null) return;
    const floor = this.#sql.exec<{ e: number | null }>("SELECT MAX(last_event) AS e FROM deliveries WHERE seq <= ?", min).one().e;
    if (floor !== null) this.#set("trimmedEventFloor", Math.max(floor, this.#num("trimmedEventFloor") ?? 0));
    // inbox-wiring: while inbox clients hold sequence numbers, keep the newest row so its number is never given again
    // (the relay rewrite keeps the next number in a state row; drop this there).
    const keepNewest = this.ctx.getWebSockets().length > 0 ? " AND seq < (SELECT MAX(seq) FROM deliveries)" : "";
    this.#sql.exec(`DELETE FROM deliveries WHERE seq <= ?${keepNewest}`, min);
    this.#sql.exec("DELETE FROM seen_keys WHERE at < ?", Date.now() - channel.retention.maxAgeMs);
  }

  /**
   * A target gone for good must not fill storage: deliveries older than the
   * retention age, or beyond the retention count, are dropped; each target
   * that had not received them counts what it lost.
   */
  #enforceRetention(channel: ChannelConfig, now: number): void {
    const total = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries").one().n;
    const byCount = total > channel.retention.maxEvents
      ? this.#sql.exec<{ seq: number }>("SELECT seq FROM deliveries ORDER BY seq LIMIT 1 OFFSET ?", total - channel.retention.maxEvents - 1).one().seq
      : 0;
    const byAge = this.#sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM deliveries WHERE received_at < ?", now - channel.retention.maxAgeMs).one().m ?? 0;
    const cut = Math.max(byCount, byAge);
    if (cut === 0) return;
    for (const t of channel.targets) {
      const lost = this.#sql.exec<{ n: number }>(
        "SELECT COUNT(*) AS n FROM deliveries WHERE seq <= ? AND seq > (SELECT cursor FROM targets WHERE url = ?)",
        cut,
        t.url,
      ).one().n;
      if (lost > 0) this.#sql.exec("UPDATE targets SET dropped = dropped + ?, cursor = ? WHERE url = ?", lost, cut, t.url);
    }
    this.#sql.exec("DELETE FROM deliveries WHERE seq <= ?", cut);
  }

  /** The next time anything is due: a target's retry, a gap's grace, a liveness check, a retention sweep. */
  async #scheduleAlarm(channel: ChannelConfig, now: number): Promise<void> {
    const due: number[] = [];
    const pending = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deliveries").one().n;
    if (pending > 0) {
      const urls = channel.targets.map((t) => t.url);
      const placeholders = urls.map(() => "?").join(",");
      const maxSeq = this.#sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM deliveries").one().m ?? 0;
      for (const row of this.#sql
        .exec<{ cursor: number; next_attempt_at: number }>(`SELECT cursor, next_attempt_at FROM targets WHERE url IN (${placeholders})`, ...urls)
        .toArray()) {
        if (row.cursor < maxSeq) due.push(Math.max(now, row.next_attempt_at));
      }
      due.push(now + 3_600_000);
    }
    const gapSince = this.#num("gapSince");
    if (gapSince !== undefined) due.push(gapSince + channel.gapGraceMs);
    if (channel.heartbeatPeriod) {
      const last = Math.max(this.#num("lastNotificationAt") ?? 0, this.#num("livenessCheckedAt") ?? 0);
      if (last > 0) due.push(last + channel.heartbeatPeriod * 2000 + 50);
    }
    if (due.length === 0) return;
    const at = Math.min(...due);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at || current < now) await this.ctx.storage.setAlarm(at);
  }

  // ---------------------------------------------------------------- helpers

  #channel(name: string | undefined): ChannelConfig | undefined {
    return name ? edgeConfig(this.env).channels.get(name) : undefined;
  }

  #lastEvent(): number {
    return this.#num("lastEvent") ?? 0;
  }

  #get(key: string): string | undefined {
    return this.#sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  }

  #num(key: string): number | undefined {
    const v = this.#get(key);
    return v === undefined ? undefined : Number(v);
  }

  #set(key: string, value: string | number): void {
    this.#sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, String(value));
  }

  #del(key: string): void {
    this.#sql.exec("DELETE FROM meta WHERE key = ?", key);
  }
}
