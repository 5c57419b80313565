/** Small Web Crypto helpers shared by the cursor signer, the delivery signers and the token cache, and the one strict base64url decoder. */

const encoder = new TextEncoder();
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function cachedKey(cacheId: string, bytes: () => Uint8Array): Promise<CryptoKey> {
  let key = hmacKeys.get(cacheId);
  if (!key) {
    if (hmacKeys.size > 32) hmacKeys.clear();
    key = crypto.subtle.importKey("raw", bytes(), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    hmacKeys.set(cacheId, key);
  }
  return key;
}

/**
 * The HMAC-SHA256 key of a secret (its UTF-8 bytes), imported once per
 * isolate and kept for signing and verifying. The cache is bounded: secrets
 * come from configuration, so a handful at most.
 */
export function hmacKey(secret: string): Promise<CryptoKey> {
  return cachedKey(`utf8:${secret}`, () => encoder.encode(secret));
}

/**
 * The HMAC-SHA256 key whose bytes are the standard base64 `encoded` (a
 * Standard Webhooks `whsec_` secret without its prefix), cached like `hmacKey`.
 * The caller has checked that `encoded` is valid base64 (`isBase64`).
 */
export function hmacKeyFromBase64(encoded: string): Promise<CryptoKey> {
  return cachedKey(`base64:${encoded}`, () => fromBase64(encoded));
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Standard base64 (RFC 4648 section 4, with padding) of bytes. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Whether `s` is non-empty standard base64 with its padding (RFC 4648 section 4), as Standard Webhooks secrets are written. */
export function isBase64(s: string): boolean {
  return s.length > 0 && s.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(s);
}

/** The bytes of standard base64 text; check it with `isBase64` first. */
export function fromBase64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Unpadded base64url of bytes (RFC 4648 section 5). */
export function toBase64url(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/**
 * The bytes of unpadded base64url text, decoded strictly: only the canonical
 * encoding of some bytes is accepted, so the unused low bits of the last
 * character must be zero and no padding, whitespace or `+`/`/` is allowed.
 * A lenient decoder maps several texts to the same bytes, and then an
 * altered signature or cursor (`...M` changed to `...N`) still verifies.
 * Every signature and cursor the edge reads goes through this.
 * @returns undefined for anything that is not canonical base64url
 * @see https://www.rfc-editor.org/rfc/rfc4648#section-3.5
 */
export function fromBase64url(text: string): Uint8Array | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  let binary: string;
  try {
    binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return undefined;
  }
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return toBase64url(bytes) === text ? bytes : undefined;
}
