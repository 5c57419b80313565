import { hmacKey, toHex } from "../crypto.ts";

const encoder = new TextEncoder();

/**
 * `X-Fhir-Edge-Signature`: `sha256=` and the lower-case hex HMAC-SHA256 of the
 * exact body bytes, keyed with the target's `signingSecret` as UTF-8.
 * @see docs/relay.md#verifying-signatures-in-a-receiver
 */
export async function signBody(body: string, secret: string): Promise<string> {
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(body)));
  return `sha256=${toHex(mac)}`;
}
