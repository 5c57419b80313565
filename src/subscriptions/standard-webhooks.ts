import { hmacKey, hmacKeyFromBase64, isBase64, toBase64 } from "../crypto.ts";

/** How the Standard Webhooks specification writes a base64 secret: `whsec_<base64>`. */
export const WHSEC_PREFIX = "whsec_";

const encoder = new TextEncoder();

/**
 * Whether a signing secret can key a Standard Webhooks signature: a secret
 * written `whsec_…` must be standard base64 (with padding) after the prefix;
 * any other non-empty string is used as its UTF-8 bytes.
 * @see docs/relay.md#standard-webhooks-signatures
 */
export function isValidSigningSecret(secret: string): boolean {
  if (secret === "") return false;
  return !secret.startsWith(WHSEC_PREFIX) || isBase64(secret.slice(WHSEC_PREFIX.length));
}

/**
 * The `webhook-id` of one delivery: the channel and its delivery sequence
 * number (`X-Fhir-Edge-Delivery`), so every retry of the same delivery
 * carries the same id, the idempotency key an at-least-once receiver keys on.
 * The sequence number is never reused within a channel.
 * @see https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
export function webhookId(channel: string, delivery: number): string {
  return `${channel}-${delivery}`;
}

/** The three Standard Webhooks headers of one delivery attempt. */
export interface StandardWebhookHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/**
 * Signs one delivery attempt per the Standard Webhooks specification:
 * `webhook-signature` holds `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`
 * for each secret, space-separated, so a receiver that knows either the new
 * or the old secret verifies during a rotation. A `whsec_<base64>` secret's
 * key is the decoded bytes; any other string's key is its UTF-8 bytes.
 * @param timestamp seconds since the epoch, of this attempt
 * @param secrets at least one, each valid (`isValidSigningSecret`)
 * @see https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#signature-scheme
 */
export async function signStandardWebhook(id: string, timestamp: number, body: string, secrets: readonly string[]): Promise<StandardWebhookHeaders> {
  const seconds = String(Math.floor(timestamp));
  const content = encoder.encode(`${id}.${seconds}.${body}`);
  const signatures = await Promise.all(
    secrets.map(async (secret) => {
      const key = secret.startsWith(WHSEC_PREFIX) ? await hmacKeyFromBase64(secret.slice(WHSEC_PREFIX.length)) : await hmacKey(secret);
      return `v1,${toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, content)))}`;
    }),
  );
  return { "webhook-id": id, "webhook-timestamp": seconds, "webhook-signature": signatures.join(" ") };
}

/**
 * Adds the Standard Webhooks headers of one attempt to a delivery's headers;
 * nothing when the target has no signing secret.
 * @param now milliseconds since the epoch, the moment of this attempt
 */
export async function addStandardWebhookHeaders(
  headers: Headers,
  delivery: { channel: string; seq: number; body: string },
  secrets: readonly string[] | undefined,
  now: number,
): Promise<void> {
  if (!secrets || secrets.length === 0) return;
  const signed = await signStandardWebhook(webhookId(delivery.channel, delivery.seq), now / 1000, delivery.body, secrets);
  for (const [name, value] of Object.entries(signed)) headers.set(name, value);
}
