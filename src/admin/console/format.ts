/**
 * Pure helpers the console renders with: reading the `/status` JSON
 * defensively (fields come and go as the relay grows) and writing times as a
 * person reads them at 3 a.m. ("in 4 min 10 s", "12 s ago").
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const asObject = (value: unknown): JsonObject => (value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : {});
export const asArray = (value: unknown): Json[] => (Array.isArray(value) ? (value as Json[]) : []);
export const asString = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
export const asNumber = (value: unknown): number | undefined => (typeof value === "number" && Number.isFinite(value) ? value : undefined);

/** "4 min 10 s", "2 h 5 min", "3 d 4 h": two units at most. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

const parse = (iso: unknown): number | undefined => {
  const text = asString(iso);
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
};

/** "12 s ago", or `never` when there is no time. */
export function ago(iso: unknown, now: number, never = "never"): string {
  const at = parse(iso);
  if (at === undefined) return never;
  return at > now ? `in ${duration(at - now)}` : `${duration(now - at)} ago`;
}

/** "in 4 min 10 s", or "expired 2 min ago". */
export function timeLeft(iso: unknown, now: number): string | undefined {
  const at = parse(iso);
  if (at === undefined) return undefined;
  return at > now ? `in ${duration(at - now)}` : `expired ${duration(now - at)} ago`;
}

/** Whether an ISO time is in the past. */
export const isPast = (iso: unknown, now: number): boolean => {
  const at = parse(iso);
  return at !== undefined && at <= now;
};

/** A field name as a label: `heldOutOfOrder` -> "held out of order". */
export function label(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
}

/** A scalar field for the generic "more" lists: fields the console does not know yet still show. */
export function scalar(value: Json): string | undefined {
  if (value === null) return undefined;
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && value.every((v) => typeof v === "string" || typeof v === "number")) return value.join(", ");
  return undefined;
}
