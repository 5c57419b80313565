const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * `X-Fhir-Edge-Signature`: `sha256=` and the lower-case hex HMAC-SHA256 of the
 * exact body bytes, keyed with the target's `signingSecret` as UTF-8.
 * @see ../../shared/design.md section 3, fan-out
 */
export async function signBody(body: string, secret: string): Promise<string> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await key, encoder.encode(body)));
  let hex = "";
  for (const b of mac) hex += b.toString(16).padStart(2, "0");
  return `sha256=${hex}`;
}
