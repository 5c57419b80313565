import { fromBase64, toBase64 } from "../../crypto.ts";
import type { TokenGrant } from "./token-response.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** The AES-256-GCM key derived (SHA-256) from the `TOKEN_CACHE_KEY` secret, once per isolate. */
function cacheKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle
      .digest("SHA-256", encoder.encode(secret))
      .then((raw) => crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]));
    keys.set(secret, key);
  }
  return key;
}

/**
 * Encrypts a grant for KV with AES-GCM; the KV key is the additional data, so
 * a value copied under another source's key does not decrypt.
 */
export async function sealGrant(grant: TokenGrant, secret: string, kvKey: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plain = encoder.encode(JSON.stringify(grant));
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: encoder.encode(kvKey) }, await cacheKey(secret), plain));
  const out = new Uint8Array(iv.length + sealed.length);
  out.set(iv);
  out.set(sealed, iv.length);
  return toBase64(out);
}

/** The grant, or undefined when the value is not one sealed with this secret under this key. */
export async function openGrant(value: string, secret: string, kvKey: string): Promise<TokenGrant | undefined> {
  try {
    const bytes = fromBase64(value); // throws on text that is not base64: caught below
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: bytes.slice(0, 12), additionalData: encoder.encode(kvKey) },
      await cacheKey(secret),
      bytes.slice(12),
    );
    const grant = JSON.parse(decoder.decode(plain)) as TokenGrant;
    return typeof grant.accessToken === "string" ? grant : undefined;
  } catch {
    return undefined;
  }
}
