import { fromBase64url, toBase64url } from "../crypto.ts";
import { hmacKeyOrIsolateKey, signToken, verifyToken } from "../signed-token.ts";
import { err, ok, type Result } from "../result.ts";

/**
 * What an edge URL for a Bulk Data location stands for:
 * - `status`: the status URL of a kick-off (GET polls, DELETE cancels);
 * - `manifest`: a further page of a completed manifest (`link[].url`; GET only);
 * - `file`: an output, error or deleted file (GET streams it).
 */
export type BulkUrlKind = "status" | "manifest" | "file";

export interface BulkUrlClaims {
  kind: BulkUrlKind;
  /** The source the location belongs to: the URL only works under `/<source>/`. */
  source: string;
  /** The client that kicked off the export (`PROXY_API_KEYS` name or JWT `sub`): nobody else may use it. */
  client: string;
  /** The upstream URL the edge fetches; checked against the source's hosts when signed and again when used. */
  url: string;
  /** Whether the edge sends the source's credentials (false for a pre-signed storage URL). */
  credentials: boolean;
}

export type BulkUrlProblem = "invalid" | "expired";

/**
 * Edge URLs for Bulk Data live a day: long enough for a large export to run
 * and its files to be fetched, short enough that a leaked URL stops working.
 */
export const BULK_URL_TTL_SECONDS = 24 * 3600;

/** The longest token accepted back: it travels in a URL path. */
export const MAX_BULK_TOKEN_LENGTH = 8192;

const VERSION = 1;
/** Marks the payload as a Bulk Data URL, so no other signed value of the edge reads as one. */
const PURPOSE = "bulk";
/** The label the signature covers (see `signToken`): the same separation for the MAC itself. */
const SIGNING_LABEL = "fhir-edge bulk url v1.";
const KINDS: ReadonlySet<string> = new Set<BulkUrlKind>(["status", "manifest", "file"]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Payload {
  p: string;
  v: number;
  k: BulkUrlKind;
  s: string;
  c: string;
  u: string;
  a: 0 | 1;
  e: number;
}

/**
 * Signs a Bulk Data location into an opaque path segment, the way aggregate
 * cursors are signed (`signToken`): `base64url(JSON payload) "." base64url(HMAC-SHA256(key, label + payload part))`.
 * Signed, not encrypted: the payload holds the upstream URL, never a credential.
 * @param now milliseconds since the epoch
 * @see https://www.rfc-editor.org/rfc/rfc2104
 */
export async function signBulkUrl(claims: BulkUrlClaims, key: CryptoKey, now: number, ttlSeconds = BULK_URL_TTL_SECONDS): Promise<string> {
  const payload: Payload = {
    p: PURPOSE,
    v: VERSION,
    k: claims.kind,
    s: claims.source,
    c: claims.client,
    u: claims.url,
    a: claims.credentials ? 1 : 0,
    e: Math.floor(now / 1000) + ttlSeconds,
  };
  return signToken(key, SIGNING_LABEL, toBase64url(encoder.encode(JSON.stringify(payload))));
}

/**
 * Verifies a token before reading anything in it (`verifyToken`: only the
 * canonical base64url of a valid signature, checked in constant time), then
 * its expiry. Whether the caller may use it (source, client) is the route's
 * check.
 * @param now milliseconds since the epoch
 */
export async function readBulkUrl(token: string, key: CryptoKey, now: number): Promise<Result<BulkUrlClaims, BulkUrlProblem>> {
  if (token.length > MAX_BULK_TOKEN_LENGTH) return err("invalid");
  const body = await verifyToken(key, SIGNING_LABEL, token);
  const bytes = body === undefined ? undefined : fromBase64url(body);
  if (!bytes) return err("invalid");
  let payload: Partial<Payload>;
  try {
    payload = JSON.parse(decoder.decode(bytes)) as Partial<Payload>;
  } catch {
    return err("invalid");
  }
  const { p, v, k, s, c, u, a, e } = payload;
  if (p !== PURPOSE || v !== VERSION || typeof k !== "string" || !KINDS.has(k) || typeof s !== "string" || typeof c !== "string") return err("invalid");
  if (typeof u !== "string" || (a !== 0 && a !== 1) || typeof e !== "number") return err("invalid");
  if (e * 1000 <= now) return err("expired");
  return ok({ kind: k, source: s, client: c, url: u, credentials: a === 1 });
}

/**
 * The HMAC-SHA256 key of Bulk Data URLs: from `BULK_URL_SECRET` (its UTF-8
 * bytes); without it, the isolate's random key (`hmacKeyOrIsolateKey`), so an
 * export's URLs then only work on the isolate that issued them (as aggregate
 * cursors do without `AGGREGATE_CURSOR_SECRET`).
 */
export function bulkUrlKey(secret: string | undefined): Promise<CryptoKey> {
  return hmacKeyOrIsolateKey(secret);
}

/** `BULK_URL_SECRET` from the bindings, when set. */
export function bulkUrlSecret(env: Readonly<Record<string, unknown>>): string | undefined {
  const secret = env.BULK_URL_SECRET;
  return typeof secret === "string" && secret !== "" ? secret : undefined;
}
