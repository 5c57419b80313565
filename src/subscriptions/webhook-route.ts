import type { Context } from "hono";
import { presentedCredential } from "../auth/inbound/api-key.ts";
import { findSecret } from "../auth/constant-time.ts";
import type { EdgeHonoEnv } from "../context.ts";
import { InvalidRequestError, UnauthenticatedError } from "../errors.ts";
import { requireChannel } from "../config/lookup.ts";
import { operationOutcome } from "../fhir/operation-outcome.ts";
import { channelStub } from "./channel-stub.ts";
import { parseNotification } from "./notification.ts";
import { fhirJson } from "../fhir/response.ts";
import { readLimited } from "../read-limited.ts";

/** The largest notification Bundle accepted (full-resource payloads included). */
export const MAX_NOTIFICATION_BYTES = 4 * 1024 * 1024;

const NOT_A_NOTIFICATION: Record<string, string> = {
  "not-a-bundle": "The body must be a FHIR Bundle",
  "not-a-notification":
    "The Bundle is not a subscription notification: expected an R5 subscription-notification Bundle, or a history Bundle whose first entry is a SubscriptionStatus (R4B) or a Parameters status (R4 backport)",
  "invalid-event-number": "An event number or eventsSinceSubscriptionStart is not a non-negative integer64 within 2^53 - 1",
  "invalid-type": "The notification's type is not handshake, heartbeat, event-notification, query-status or query-event",
};

/**
 * `POST /webhooks/:channel`: a source delivers a notification. The channel
 * secret (X-Api-Key or Bearer, compared in constant time) authenticates it;
 * the body must be one of the three wire forms. The 200 is sent only once the
 * channel's Durable Object has the notification in storage.
 * @see docs/relay.md
 */
export const webhookHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  const name = c.req.param("channel") ?? "";
  c.set("logRoute", "webhooks/{channel}");
  const channel = requireChannel(c.get("config"), name);
  c.set("logSource", channel.source);
  const presented = presentedCredential(c.req.raw.headers);
  if (!presented || findSecret(presented, [channel.secret]) === -1) {
    throw new UnauthenticatedError(presented ? "invalid-credentials" : "missing-credentials", "Notifications need the channel secret (X-Api-Key or Authorization: Bearer)", 'Bearer realm="fhir-edge-webhooks"');
  }

  const text = await readLimited(c.req.raw, MAX_NOTIFICATION_BYTES, { code: "body-too-large", message: `A notification may be at most ${MAX_NOTIFICATION_BYTES} bytes` });
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new InvalidRequestError("invalid-json", "The notification is not valid JSON");
  }
  const parsed = parseNotification(body);
  if (!parsed.ok) throw new InvalidRequestError(parsed.error, NOT_A_NOTIFICATION[parsed.error] ?? "Not a notification");

  const result = await channelStub(c.env, name).accept(name, parsed.value, text);
  if (!result.ok) throw new InvalidRequestError(result.code, result.message);
  const message = `Accepted ${parsed.value.type}: ${result.stored} new, ${result.duplicates} already seen, ${result.held} held for earlier events`;
  return fhirJson(operationOutcome({ issueCode: "informational", code: "accepted", message, severity: "information", requestId: c.get("requestId") }));
};
