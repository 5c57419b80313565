/**
 * The one way the edge signs a value it hands out and reads back (aggregate
 * cursors, Bulk Data edge URLs, console sessions): `payload "." signature`,
 * the signature being the canonical unpadded base64url of
 * HMAC-SHA256(key, purpose label + payload). The label keeps one kind of
 * token from passing for another when they share a key (as they do without
 * their secrets: one random key per isolate).
 */
import { fromBase64url, hmacKey, toBase64url } from "./crypto.ts";

const encoder = new TextEncoder();
let isolateKey: Promise<CryptoKey> | undefined;

/**
 * The HMAC-SHA256 key of `secret` (its UTF-8 bytes, imported once per
 * isolate); without one (undefined or empty), a random key made once per
 * isolate, so what it signs only verifies on the isolate that signed it.
 * @see https://www.rfc-editor.org/rfc/rfc2104
 */
export function hmacKeyOrIsolateKey(secret: string | undefined): Promise<CryptoKey> {
  if (secret !== undefined && secret !== "") return hmacKey(secret);
  isolateKey ??= crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]) as Promise<CryptoKey>;
  return isolateKey;
}

/**
 * Signs `payload` for `purpose`: returns `payload "." base64url(HMAC-SHA256(key, purpose + payload))`.
 * `payload` must not contain a `.` (base64url text does not).
 * @see https://www.rfc-editor.org/rfc/rfc2104
 */
export async function signToken(key: CryptoKey, purpose: string, payload: string): Promise<string> {
  const signature = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(purpose + payload)));
  return `${payload}.${toBase64url(signature)}`;
}

/**
 * The payload of a token `signToken` made for `purpose` under `key`, or
 * undefined. The signature must be the canonical base64url of 32 bytes (the
 * strict `fromBase64url`, so no altered character maps to the same bytes) and
 * is checked by `crypto.subtle.verify`, in constant time. Nothing in the
 * payload is read before this.
 * @see https://www.rfc-editor.org/rfc/rfc4648#section-3.5
 */
export async function verifyToken(key: CryptoKey, purpose: string, token: string): Promise<string | undefined> {
  const dot = token.indexOf(".");
  if (dot <= 0) return undefined;
  const payload = token.slice(0, dot);
  const signature = fromBase64url(token.slice(dot + 1));
  if (!signature || signature.length !== 32) return undefined;
  return (await crypto.subtle.verify("HMAC", key, signature, encoder.encode(purpose + payload))) ? payload : undefined;
}
