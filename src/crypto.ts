/** Small Web Crypto helpers shared by the cursor signer, the delivery signers and the token cache. */

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
