/** Small Web Crypto helpers shared by the cursor signer, the delivery signer and the token cache. */

const encoder = new TextEncoder();
const hmacKeys = new Map<string, Promise<CryptoKey>>();

/**
 * The HMAC-SHA256 key of a secret (its UTF-8 bytes), imported once per
 * isolate and kept for signing and verifying. The cache is bounded: secrets
 * come from configuration, so a handful at most.
 */
export function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    if (hmacKeys.size > 32) hmacKeys.clear();
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}
