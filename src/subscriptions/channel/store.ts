import { migrate } from "./migrations.ts";

/** The channel's one row of state. Times are epoch milliseconds. */
export interface ChannelState {
  channel: string | null;
  subscriptionId: string | null;
  /** Highest event number up to which every event was delivered, recovered or recorded as a gap; null before the first. */
  lastEvent: number | null;
  /** The delivery sequence number the next stored notification gets. Only grows. */
  nextDelivery: number;
  /** When the current gap was first noticed (its grace runs from here), and the highest count announced. */
  gapSince: number | null;
  gapTo: number | null;
  handshakeAt: number | null;
  heartbeatAt: number | null;
  lastNotificationAt: number | null;
  livenessCheckedAt: number | null;
  livenessResult: string | null;
}

const STATE_COLUMNS: Record<keyof ChannelState, string> = {
  channel: "channel",
  subscriptionId: "subscription_id",
  lastEvent: "last_event",
  nextDelivery: "next_delivery",
  gapSince: "gap_since",
  gapTo: "gap_to",
  handshakeAt: "handshake_at",
  heartbeatAt: "heartbeat_at",
  lastNotificationAt: "last_notification_at",
  livenessCheckedAt: "liveness_checked_at",
  livenessResult: "liveness_result",
};

/** One stored notification Bundle, as delivered. */
export interface StoredNotification {
  seq: number;
  firstEvent: number | null;
  lastEvent: number | null;
  body: string;
}

export interface HeldNotification {
  first: number;
  last: number;
  events: number[];
  body: string;
}

export interface TargetRow {
  url: string;
  cursor: number;
  lastEvent: number | null;
  failures: number;
  nextAttemptAt: number;
  lastStatus: string | null;
  delivered: number;
  dropped: number;
  pending: number;
}

export interface GapRow {
  from: number;
  to: number;
  outcome: string;
  at: number;
}

type Row = Record<string, SqlStorageValue>;

/**
 * Every SQL statement of the channel Durable Object. Synchronous: callers
 * group the statements of one state change in {@link ChannelStore.transaction}.
 * A notification is pending for a target exactly while its outbox row exists.
 */
export class ChannelStore {
  readonly #storage: DurableObjectStorage;
  readonly #sql: SqlStorage;

  constructor(storage: DurableObjectStorage, now: number) {
    this.#storage = storage;
    this.#sql = storage.sql;
    migrate(storage, now);
  }

  transaction<T>(fn: () => T): T {
    return this.#storage.transactionSync(fn);
  }

  // ------------------------------------------------------------ state row

  state(): ChannelState {
    const r = this.#sql.exec<Row>("SELECT * FROM channel_state WHERE id = 1").one();
    const out = {} as Record<string, unknown>;
    for (const [key, column] of Object.entries(STATE_COLUMNS)) out[key] = r[column] ?? null;
    return out as unknown as ChannelState;
  }

  updateState(patch: Partial<ChannelState>): void {
    const entries = Object.entries(patch).filter(([k]) => k in STATE_COLUMNS && k !== "nextDelivery");
    if (entries.length === 0) return;
    const sets = entries.map(([k]) => `${STATE_COLUMNS[k as keyof ChannelState]} = ?`).join(", ");
    this.#sql.exec(`UPDATE channel_state SET ${sets} WHERE id = 1`, ...entries.map(([, v]) => (v ?? null) as SqlStorageValue));
  }

  // ------------------------------------------------------------ targets

  /**
   * Rows for configured targets that have none; a target added later starts
   * with the next notification. A target no longer configured loses its
   * outbox rows, counted in its `dropped` (its row stays: configured again, it
   * shows them); what no target waits for any more is settled, so it leaves
   * with the replay window instead of holding storage and the alarm for
   * `retentionSeconds`.
   * @see docs/relay.md#where-the-contract-is-silent
   */
  ensureTargets(urls: readonly string[], now: number): void {
    const state = this.state();
    for (const url of urls) {
      this.#sql.exec("INSERT OR IGNORE INTO target_state (url, cursor, last_event) VALUES (?, ?, ?)", url, state.nextDelivery - 1, state.lastEvent);
    }
    // With no target configured at all, every row is a removed target's (`NOT IN (NULL)` would match none).
    const notConfigured = urls.length > 0 ? `NOT IN (${urls.map(() => "?").join(",")})` : "IS NOT NULL";
    const removed = this.#sql.exec("SELECT 1 FROM outbox WHERE target " + notConfigured + " LIMIT 1", ...urls).toArray().length > 0;
    if (!removed) return;
    this.#sql.exec(
      `UPDATE target_state SET dropped = dropped + (SELECT COUNT(*) FROM outbox o WHERE o.target = target_state.url),
         cursor = MAX(cursor, (SELECT MAX(o.seq) FROM outbox o WHERE o.target = target_state.url))
       WHERE url ${notConfigured} AND EXISTS (SELECT 1 FROM outbox o WHERE o.target = target_state.url)`,
      ...urls,
    );
    this.#sql.exec(`DELETE FROM outbox WHERE target ${notConfigured}`, ...urls);
    this.#sql.exec("UPDATE notifications SET settled_at = ? WHERE settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = notifications.seq)", now);
  }

  targets(urls: readonly string[]): TargetRow[] {
    return urls
      .map((url) => this.#sql.exec<Row>("SELECT *, (SELECT COUNT(*) FROM outbox o WHERE o.target = t.url) AS pending FROM target_state t WHERE url = ?", url).toArray()[0])
      .filter((r): r is Row => r !== undefined)
      .map((r) => ({
        url: r.url as string,
        cursor: r.cursor as number,
        lastEvent: (r.last_event as number | null) ?? null,
        failures: r.failures as number,
        nextAttemptAt: r.next_attempt_at as number,
        lastStatus: (r.last_status as string | null) ?? null,
        delivered: r.delivered as number,
        dropped: r.dropped as number,
        pending: r.pending as number,
      }));
  }

  // ------------------------------------------------------------ notifications and outbox

  /** Stores one notification under the next delivery sequence number, pending for every target given. */
  addNotification(first: number | null, last: number | null, body: string, now: number, targets: readonly string[]): number {
    const seq = this.#sql.exec<{ n: number }>("SELECT next_delivery AS n FROM channel_state WHERE id = 1").one().n;
    this.#sql.exec("UPDATE channel_state SET next_delivery = ? WHERE id = 1", seq + 1);
    this.#sql.exec(
      "INSERT INTO notifications (seq, first_event, last_event, body, received_at, settled_at) VALUES (?, ?, ?, ?, ?, ?)",
      seq,
      first,
      last,
      body,
      now,
      targets.length === 0 ? now : null,
    );
    for (const t of targets) this.#sql.exec("INSERT INTO outbox (target, seq) VALUES (?, ?)", t, seq);
    return seq;
  }

  /** The target's oldest pending notification. */
  nextPending(target: string): StoredNotification | undefined {
    const r = this.#sql
      .exec<Row>(
        "SELECT n.seq, n.first_event, n.last_event, n.body FROM outbox o JOIN notifications n ON n.seq = o.seq WHERE o.target = ? ORDER BY o.seq LIMIT 1",
        target,
      )
      .toArray()[0];
    return r ? { seq: r.seq as number, firstEvent: r.first_event as number | null, lastEvent: r.last_event as number | null, body: r.body as string } : undefined;
  }

  /** A 2xx: the target's outbox row goes; the notification is settled once no target waits for it. */
  recordDelivered(target: string, n: StoredNotification, status: number, now: number): void {
    this.#sql.exec("DELETE FROM outbox WHERE target = ? AND seq = ?", target, n.seq);
    this.#sql.exec(
      `UPDATE target_state SET cursor = MAX(cursor, ?), last_event = CASE WHEN ? IS NULL THEN last_event ELSE MAX(COALESCE(last_event, 0), ?) END,
         failures = 0, next_attempt_at = 0, last_status = ?, delivered = delivered + 1 WHERE url = ?`,
      n.seq,
      n.lastEvent,
      n.lastEvent,
      String(status),
      target,
    );
    this.#sql.exec("UPDATE notifications SET settled_at = ? WHERE seq = ? AND settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox WHERE seq = ?)", now, n.seq, n.seq);
  }

  recordFailure(target: string, failures: number, nextAttemptAt: number, lastStatus: string): void {
    this.#sql.exec("UPDATE target_state SET failures = ?, next_attempt_at = ?, last_status = ? WHERE url = ?", failures, nextAttemptAt, lastStatus, target);
  }

  /** Notifications settled at or before `before` (outside the replay window) are deleted. */
  deleteSettled(before: number): void {
    this.#sql.exec("DELETE FROM notifications WHERE settled_at IS NOT NULL AND settled_at <= ?", before);
  }

  /**
   * Retention. `maxEvents` bounds the notifications kept only for replay
   * (settled ones, oldest first); it never touches a pending one, so a live
   * target in backoff loses nothing however much piles up. Pending rows go
   * only by age: those received before `olderThan` (a target gone for good);
   * each target that had not received a dropped one counts it and moves past it.
   * @see docs/relay.md#delivery-guarantees ("Storage is bounded")
   */
  enforceRetention(maxEvents: number, olderThan: number): void {
    const total = this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM notifications").one().n;
    if (total > maxEvents) {
      this.#sql.exec(
        "DELETE FROM notifications WHERE seq IN (SELECT seq FROM notifications WHERE settled_at IS NOT NULL ORDER BY seq LIMIT ?)",
        total - maxEvents,
      );
    }
    const cut = this.#sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM notifications WHERE received_at < ?", olderThan).one().m ?? 0;
    if (cut === 0) return;
    this.#sql.exec(
      `UPDATE target_state SET dropped = dropped + (SELECT COUNT(*) FROM outbox o WHERE o.target = target_state.url AND o.seq <= ?),
         cursor = MAX(cursor, ?) WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.target = target_state.url AND o.seq <= ?)`,
      cut,
      cut,
      cut,
    );
    this.#sql.exec("DELETE FROM outbox WHERE seq <= ?", cut);
    this.#sql.exec("DELETE FROM notifications WHERE seq <= ?", cut);
  }

  /** Notifications after `since` (an event number, or a delivery sequence number), oldest first. */
  notificationsAfter(since: number, by: "event" | "delivery"): string[] {
    const query = by === "event" ? "SELECT body FROM notifications WHERE last_event > ? ORDER BY seq" : "SELECT body FROM notifications WHERE seq > ? ORDER BY seq";
    return this.#sql.exec<{ body: string }>(query, since).toArray().map((r) => r.body);
  }

  /**
   * The WebSocket inbox's reads: stored notifications (accepted in order, never
   * held ones) after a client position, oldest first, at most `limit`; a
   * position is the last event number under strict sequencing, else the
   * delivery sequence number.
   */
  inboxAfter(position: number, by: "event" | "delivery", limit: number): StoredNotification[] {
    const query =
      by === "event"
        ? "SELECT seq, first_event, last_event, body FROM notifications WHERE last_event > ? ORDER BY seq LIMIT ?"
        : "SELECT seq, first_event, last_event, body FROM notifications WHERE seq > ? ORDER BY seq LIMIT ?";
    return this.#stored(query, position, limit);
  }

  /** Stored notifications after delivery sequence number `seq`, oldest first, at most `limit` (where an inbox connection got to). */
  inboxAfterDelivery(seq: number, limit: number): StoredNotification[] {
    return this.#stored("SELECT seq, first_event, last_event, body FROM notifications WHERE seq > ? ORDER BY seq LIMIT ?", seq, limit);
  }

  #stored(query: string, ...params: number[]): StoredNotification[] {
    return this.#sql
      .exec<Row>(query, ...params)
      .toArray()
      .map((r) => ({ seq: r.seq as number, firstEvent: (r.first_event as number | null) ?? null, lastEvent: (r.last_event as number | null) ?? null, body: r.body as string }));
  }

  /** How far back replay reaches: the oldest stored notification. */
  replayReach(): { retained: number; oldestDelivery: number | null; oldestEvent: number | null; oldestAt: number | null } {
    const r = this.#sql.exec<Row>("SELECT COUNT(*) AS n, MIN(seq) AS s, MIN(first_event) AS e, MIN(received_at) AS at FROM notifications").one();
    return { retained: r.n as number, oldestDelivery: (r.s as number | null) ?? null, oldestEvent: (r.e as number | null) ?? null, oldestAt: (r.at as number | null) ?? null };
  }

  counts(): { notifications: number; pendingNotifications: number; outbox: number; held: number } {
    const r = this.#sql
      .exec<Row>(
        `SELECT (SELECT COUNT(*) FROM notifications) AS n, (SELECT COUNT(DISTINCT seq) FROM outbox) AS p,
                (SELECT COUNT(*) FROM outbox) AS o, (SELECT COUNT(*) FROM held_notifications) AS h`,
      )
      .one();
    return { notifications: r.n as number, pendingNotifications: r.p as number, outbox: r.o as number, held: r.h as number };
  }

  /** The earliest retry of a target with something pending, and the earliest settled notification (for the replay window). */
  due(): { nextAttempt: number | null; oldestSettled: number | null; oldestPendingAt: number | null } {
    const r = this.#sql
      .exec<Row>(
        `SELECT (SELECT MIN(t.next_attempt_at) FROM target_state t WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.target = t.url)) AS a,
                (SELECT MIN(settled_at) FROM notifications) AS s,
                (SELECT MIN(n.received_at) FROM notifications n WHERE n.settled_at IS NULL) AS p`,
      )
      .one();
    return { nextAttempt: (r.a as number | null) ?? null, oldestSettled: (r.s as number | null) ?? null, oldestPendingAt: (r.p as number | null) ?? null };
  }

  // ------------------------------------------------------------ held notifications

  firstHeld(): HeldNotification | undefined {
    const r = this.#sql.exec<Row>("SELECT * FROM held_notifications ORDER BY first_event LIMIT 1").toArray()[0];
    return r ? this.#held(r) : undefined;
  }

  heldAt(first: number): HeldNotification | undefined {
    const r = this.#sql.exec<Row>("SELECT * FROM held_notifications WHERE first_event = ?", first).toArray()[0];
    return r ? this.#held(r) : undefined;
  }

  putHeld(h: HeldNotification, now: number): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO held_notifications (first_event, last_event, events, body, received_at) VALUES (?, ?, ?, ?, ?)",
      h.first,
      h.last,
      JSON.stringify(h.events),
      h.body,
      now,
    );
  }

  deleteHeld(first: number): void {
    this.#sql.exec("DELETE FROM held_notifications WHERE first_event = ?", first);
  }

  #held(r: Row): HeldNotification {
    return { first: r.first_event as number, last: r.last_event as number, events: JSON.parse(r.events as string) as number[], body: r.body as string };
  }

  // ------------------------------------------------------------ per-bundle keys, gaps

  hasSeenKey(key: string): boolean {
    return this.#sql.exec("SELECT 1 FROM seen_keys WHERE key = ?", key).toArray().length > 0;
  }

  addSeenKey(key: string, now: number): void {
    this.#sql.exec("INSERT OR IGNORE INTO seen_keys (key, at) VALUES (?, ?)", key, now);
  }

  deleteSeenKeys(before: number): void {
    this.#sql.exec("DELETE FROM seen_keys WHERE at < ?", before);
  }

  addGap(from: number, to: number, outcome: string, now: number): void {
    this.#sql.exec("INSERT INTO gaps (from_event, to_event, outcome, at) VALUES (?, ?, ?, ?)", from, to, outcome, now);
  }

  recentGaps(limit: number): GapRow[] {
    return this.#sql
      .exec<Row>("SELECT * FROM gaps ORDER BY at DESC, from_event DESC LIMIT ?", limit)
      .toArray()
      .map((g) => ({ from: g.from_event as number, to: g.to_event as number, outcome: g.outcome as string, at: g.at as number }));
  }

  /** Events recorded as unrecoverable, all told. */
  unrecoverableEvents(): number {
    return this.#sql.exec<{ n: number | null }>("SELECT SUM(to_event - from_event + 1) AS n FROM gaps").one().n ?? 0;
  }
}
