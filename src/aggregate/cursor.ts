import { fromBase64url, toBase64url } from "../crypto.ts";
import { hmacKeyOrIsolateKey, signToken, verifyToken } from "../signed-token.ts";
import { err, ok, type Result } from "../result.ts";
import type { SourcePosition } from "./merge.ts";

/** What a `link[next]` of an aggregate carries: the whole search and where each source continues. */
export interface CursorState {
  resourceType: string;
  /** The client it was issued to (`PROXY_API_KEYS` name or JWT `sub`): nobody else may use it. */
  client: string;
  count: number | null;
  sort: string | null;
  positions: SourcePosition[];
}

export type CursorProblem = "invalid" | "expired";

/** The longest cursor accepted back (and so the longest one issued): it travels in a URL. */
export const MAX_CURSOR_LENGTH = 16_384;

/** Cursors expire after an hour: upstream paging links seldom live longer, and a cursor is a capability. */
export const CURSOR_TTL_SECONDS = 3600;

const VERSION = 1;
/** Cursors are signed under this label, so no other value the edge signs reads as one. */
const PURPOSE = "fhir-edge aggregate cursor v1.";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The payload as written: short keys, since it travels in every next link. */
interface Payload {
  v: number;
  t: string;
  c: string;
  e: number;
  n: number | null;
  s: string | null;
  p: Array<{ n: string; a: string | null; k: number; t?: number }>;
}

/**
 * Signs a cursor with `signToken`: `base64url(JSON payload) "." base64url(HMAC-SHA256(key, label + payload part))`.
 * The payload is signed, not encrypted: it holds the search the client sent
 * and each source's position relative to its base (never an upstream host or
 * a credential).
 * @param now milliseconds since the epoch
 * @see https://www.rfc-editor.org/rfc/rfc2104
 */
export async function signCursor(state: CursorState, key: CryptoKey, now: number, ttlSeconds = CURSOR_TTL_SECONDS): Promise<string> {
  const payload: Payload = {
    v: VERSION,
    t: state.resourceType,
    c: state.client,
    e: Math.floor(now / 1000) + ttlSeconds,
    n: state.count,
    s: state.sort,
    p: state.positions.map((p) => ({ n: p.source, a: p.at, k: p.skip, ...(p.total === undefined ? {} : { t: p.total }) })),
  };
  return signToken(key, PURPOSE, toBase64url(encoder.encode(JSON.stringify(payload))));
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0;

function readPayload(value: unknown): CursorState | undefined {
  const p = value as Partial<Payload> | null;
  if (p === null || typeof p !== "object" || p.v !== VERSION) return undefined;
  if (typeof p.t !== "string" || typeof p.c !== "string" || !Array.isArray(p.p) || p.p.length === 0) return undefined;
  if (!(p.n === null || isCount(p.n)) || !(p.s === null || typeof p.s === "string")) return undefined;
  const positions: SourcePosition[] = [];
  for (const item of p.p) {
    if (item === null || typeof item !== "object" || typeof item.n !== "string" || !(item.a === null || typeof item.a === "string") || !isCount(item.k)) return undefined;
    if (item.t !== undefined && !isCount(item.t)) return undefined;
    positions.push({ source: item.n, at: item.a, skip: item.k, ...(item.t === undefined ? {} : { total: item.t }) });
  }
  return { resourceType: p.t, client: p.c, count: p.n ?? null, sort: p.s ?? null, positions };
}

/**
 * Verifies a cursor's signature (`verifyToken`: strict base64url, constant
 * time) before reading anything in it, then its expiry. Who may use it is the
 * caller's check (see the aggregate handler).
 * @param now milliseconds since the epoch
 */
export async function readCursor(token: string, key: CryptoKey, now: number): Promise<Result<CursorState, CursorProblem>> {
  if (token.length > MAX_CURSOR_LENGTH) return err("invalid");
  const body = await verifyToken(key, PURPOSE, token);
  if (body === undefined) return err("invalid");
  const bytes = fromBase64url(body);
  if (!bytes) return err("invalid");
  let state: CursorState | undefined;
  let expires: unknown;
  try {
    const parsed = JSON.parse(decoder.decode(bytes)) as { e?: unknown };
    expires = parsed.e;
    state = readPayload(parsed);
  } catch {
    return err("invalid");
  }
  if (!state || typeof expires !== "number") return err("invalid");
  if (expires * 1000 <= now) return err("expired");
  return ok(state);
}

/**
 * The HMAC-SHA256 key of cursors: from `AGGREGATE_CURSOR_SECRET` (its UTF-8
 * bytes); without it, the isolate's random key (`hmacKeyOrIsolateKey`), so
 * cursors then only work on the isolate that issued them.
 */
export function cursorKey(secret: string | undefined): Promise<CryptoKey> {
  return hmacKeyOrIsolateKey(secret);
}
