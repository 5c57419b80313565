import type { TargetConfig } from "../../config/channel.ts";
import { fetchWithTimeout } from "../../fetch-with-timeout.ts";
import { signBody } from "../signature.ts";
import { addStandardWebhookHeaders } from "../standard-webhooks.ts";
import type { StoredNotification } from "./store.ts";

export const DELIVERY_TIMEOUT_MS = 10_000;

/**
 * One POST of a stored notification Bundle to one target: its headers, the
 * channel and delivery headers (`X-Fhir-Edge-Delivery` is the never-reused
 * delivery sequence number, the same on every retry), and, where the
 * target has signing secrets, `X-Fhir-Edge-Signature` (keyed by the first)
 * and the Standard Webhooks headers: `webhook-id` is `<channel>-<seq>`, so
 * every retry of one delivery carries the same id; `webhook-timestamp` is
 * this attempt's.
 * @param now epoch milliseconds of this attempt (the object's injected clock)
 * @returns the HTTP status, or 0 when the target could not be reached in time
 * @see https://hl7.org/fhir/R5/subscription.html#channel
 * @see https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
export async function deliverNotification(
  fetcher: (request: Request) => Promise<Response>,
  channelName: string,
  target: TargetConfig,
  notification: StoredNotification,
  now: number,
  timeoutMs = DELIVERY_TIMEOUT_MS,
): Promise<number> {
  const headers = new Headers({ "Content-Type": "application/fhir+json; charset=utf-8" });
  for (const [name, value] of target.headers) headers.set(name, value);
  headers.set("X-Fhir-Edge-Channel", channelName);
  headers.set("X-Fhir-Edge-Delivery", String(notification.seq));
  if (notification.firstEvent !== null && notification.lastEvent !== null) headers.set("X-Fhir-Edge-Events", `${notification.firstEvent}-${notification.lastEvent}`);
  if (target.signingSecret) headers.set("X-Fhir-Edge-Signature", await signBody(notification.body, target.signingSecret));
  await addStandardWebhookHeaders(headers, { channel: channelName, seq: notification.seq, body: notification.body }, target.signingSecrets, now);
  try {
    const response = await fetchWithTimeout(target.url, { method: "POST", headers, body: notification.body, redirect: "manual" }, timeoutMs, fetcher);
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}
