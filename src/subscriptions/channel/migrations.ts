/**
 * The channel Durable Object's schema, as numbered migrations (docs/storage.md
 * describes each table). Each runs once, in order, in one transaction with
 * the row that records it; a migration is never edited once released, a
 * change is a new one.
 */

export interface Migration {
  version: number;
  description: string;
  up(sql: SqlStorage, now: number): void;
}

const tableExists = (sql: SqlStorage, name: string) =>
  sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;

const V1_TABLES = `
CREATE TABLE channel_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  channel TEXT,
  subscription_id TEXT,
  last_event INTEGER,
  next_delivery INTEGER NOT NULL DEFAULT 1,
  gap_since INTEGER,
  gap_to INTEGER,
  handshake_at INTEGER,
  heartbeat_at INTEGER,
  last_notification_at INTEGER,
  liveness_checked_at INTEGER,
  liveness_result TEXT
);
INSERT INTO channel_state (id) VALUES (1);
CREATE TABLE notifications (
  seq INTEGER PRIMARY KEY,
  first_event INTEGER,
  last_event INTEGER,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX notifications_last_event ON notifications (last_event);
CREATE TABLE outbox (
  target TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (target, seq)
) WITHOUT ROWID;
CREATE INDEX outbox_seq ON outbox (seq);
CREATE TABLE target_state (
  url TEXT PRIMARY KEY,
  cursor INTEGER NOT NULL DEFAULT 0,
  last_event INTEGER,
  failures INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_status TEXT,
  delivered INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE held_notifications (
  first_event INTEGER PRIMARY KEY,
  last_event INTEGER NOT NULL,
  events TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_keys (
  key TEXT PRIMARY KEY,
  at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gaps (
  from_event INTEGER NOT NULL,
  to_event INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  at INTEGER NOT NULL
);
`;

/**
 * From the first version's tables (`meta`, `deliveries`, `held`, `targets`),
 * if present: the key-value `meta` becomes the typed state row; every stored
 * delivery a target's cursor had not reached becomes that target's outbox
 * row; the delivery sequence continues after the highest one stored. Nothing
 * pending is dropped. `seen_keys` and `gaps` keep their shape.
 */
function fromFirstVersion(sql: SqlStorage, now: number): void {
  if (!tableExists(sql, "meta")) return;
  const meta = new Map(sql.exec<{ key: string; value: string }>("SELECT key, value FROM meta").toArray().map((r) => [r.key, r.value]));
  const num = (key: string) => (meta.has(key) ? Number(meta.get(key)) : null);
  const maxSeq = tableExists(sql, "deliveries") ? (sql.exec<{ m: number | null }>("SELECT MAX(seq) AS m FROM deliveries").one().m ?? 0) : 0;
  sql.exec(
    `UPDATE channel_state SET channel = ?, subscription_id = ?, last_event = ?, next_delivery = ?, gap_since = ?, gap_to = ?,
       handshake_at = ?, heartbeat_at = ?, last_notification_at = ?, liveness_checked_at = ?, liveness_result = ? WHERE id = 1`,
    meta.get("channel") ?? null,
    meta.get("subscriptionId") ?? null,
    num("lastEvent"),
    maxSeq + 1,
    num("gapSince"),
    num("gapTo"),
    num("handshakeAt"),
    num("heartbeatAt"),
    num("lastNotificationAt"),
    num("livenessCheckedAt"),
    meta.get("livenessResult") ?? null,
  );
  if (tableExists(sql, "deliveries")) {
    sql.exec("INSERT INTO notifications (seq, first_event, last_event, body, received_at) SELECT seq, first_event, last_event, body, received_at FROM deliveries");
  }
  if (tableExists(sql, "targets")) {
    sql.exec(
      `INSERT INTO target_state (url, cursor, last_event, failures, next_attempt_at, last_status, delivered, dropped)
       SELECT url, cursor, NULL, failures, next_attempt_at, last_status, delivered, dropped FROM targets`,
    );
    sql.exec("INSERT INTO outbox (target, seq) SELECT t.url, n.seq FROM targets t JOIN notifications n ON n.seq > t.cursor");
    sql.exec(
      `UPDATE target_state SET last_event = COALESCE((SELECT MAX(n.last_event) FROM notifications n WHERE n.seq <= target_state.cursor), ?)`,
      meta.has("trimmedEventFloor") ? Number(meta.get("trimmedEventFloor")) : null,
    );
  }
  sql.exec("UPDATE notifications SET settled_at = ? WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = notifications.seq)", now);
  if (tableExists(sql, "held")) {
    for (const h of sql.exec<{ first_event: number; last_event: number; body: string; received_at: number }>("SELECT first_event, last_event, body, received_at FROM held").toArray()) {
      const events: number[] = [];
      for (let n = h.first_event; n <= h.last_event; n++) events.push(n);
      sql.exec("INSERT INTO held_notifications (first_event, last_event, events, body, received_at) VALUES (?, ?, ?, ?, ?)", h.first_event, h.last_event, JSON.stringify(events), h.body, h.received_at);
    }
  }
  for (const old of ["meta", "deliveries", "held", "targets"]) sql.exec(`DROP TABLE IF EXISTS ${old}`);
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "typed state row, never-reused delivery sequence, outbox per target; migrates the first version's tables",
    up(sql, now) {
      sql.exec(V1_TABLES);
      fromFirstVersion(sql, now);
    },
  },
  {
    version: 2,
    description: "delivery sequence continues after every target's cursor, not only after the stored notifications",
    up(sql) {
      // Migration 1 continued after the highest stored delivery; a quiet first-version channel had
      // trimmed them all while its cursors stood at N, so numbers 1..N (X-Fhir-Edge-Delivery,
      // webhook-id) were issued again and receivers that dedupe by webhook-id dropped new events.
      // Only ever raised: a channel already migrated and running keeps its higher number.
      sql.exec(
        `UPDATE channel_state SET next_delivery = MAX(next_delivery,
           COALESCE((SELECT MAX(seq) FROM notifications), 0) + 1,
           COALESCE((SELECT MAX(cursor) FROM target_state), 0) + 1) WHERE id = 1`,
      );
    },
  },
];

/** Runs the migrations not yet applied, each in its own transaction. Safe to call at every start. */
export function migrate(storage: DurableObjectStorage, now: number, migrations: readonly Migration[] = MIGRATIONS): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = sql.exec<{ v: number | null }>("SELECT MAX(version) AS v FROM schema_migrations").one().v ?? 0;
  for (const m of migrations) {
    if (m.version <= applied) continue;
    storage.transactionSync(() => {
      m.up(sql, now);
      sql.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", m.version, now);
    });
  }
}
