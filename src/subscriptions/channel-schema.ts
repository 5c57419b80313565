/**
 * The channel Durable Object's SQLite tables, in one place (docs/storage.md
 * describes each). Idempotent: run at every start.
 */
export const CHANNEL_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
  seq INTEGER PRIMARY KEY,
  first_event INTEGER,
  last_event INTEGER,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS held (
  first_event INTEGER PRIMARY KEY,
  last_event INTEGER NOT NULL,
  seen TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS targets (
  url TEXT PRIMARY KEY,
  cursor INTEGER NOT NULL,
  failures INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_status TEXT,
  delivered INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0
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
