import { err, ok, type Result } from "../result.ts";

/** The three wire forms the edge accepts. */
export type WireFormat = "R5" | "R4B" | "R4-backport";

/** SubscriptionStatus.type (R5) / the backport's `type` parameter. */
export type NotificationType = "handshake" | "heartbeat" | "event-notification" | "query-status" | "query-event";

export interface NotificationEvent {
  /** `eventNumber`: integer64, sent as a string in R5 and R4B JSON. */
  eventNumber?: number;
  /** An identity for deduplication when counters restart per bundle (`per-bundle` sequencing). */
  key: string;
  focus?: string;
}

/** One notification Bundle, in a shape independent of its FHIR version. */
export interface Notification {
  format: WireFormat;
  type: NotificationType;
  /** The Subscription's id, from its reference (`Subscription/123`, or an absolute URL). */
  subscriptionId?: string;
  topic?: string;
  status?: string;
  eventsSinceSubscriptionStart?: number;
  events: NotificationEvent[];
}

export type NotificationError =
  | "not-a-bundle"
  | "not-a-notification"
  | "invalid-event-number"
  | "invalid-type";

const TYPES = new Set<string>(["handshake", "heartbeat", "event-notification", "query-status", "query-event"]);

/**
 * Reads an integer64 (a JSON string in R5/R4B, any integer-valued form in the
 * R4 backport). Values past 2^53 - 1 are refused rather than rounded.
 * @see https://hl7.org/fhir/R5/datatypes.html#integer64
 */
export function parseEventNumber(value: unknown): number | undefined | "invalid" {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : "invalid";
  if (typeof value === "string" && /^\d{1,20}$/.test(value)) {
    const big = BigInt(value);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : "invalid";
  }
  return "invalid";
}

type Json = Record<string, unknown>;

const asObject = (v: unknown): Json | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : undefined);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const reference = (v: unknown): string | undefined => {
  const r = asObject(v)?.reference;
  return typeof r === "string" ? r : undefined;
};

/**
 * The event number of one event as the parser reads it: `eventNumber` of an
 * R5/R4B `notificationEvent`, or the `event-number` part of a backport
 * `notification-event` parameter. Shared with slice.ts so that both agree on
 * what is a number.
 * @see https://hl7.org/fhir/R5/subscriptionstatus-definitions.html#SubscriptionStatus.notificationEvent.eventNumber
 * @see https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription-status-r4.html
 */
export function eventNumberOf(event: Readonly<Record<string, unknown>>, backport: boolean): number | undefined | "invalid" {
  if (!backport) return parseEventNumber(event.eventNumber);
  const numberPart = asArray(event.part)
    .map((x) => asObject(x) ?? {})
    .find((x) => x.name === "event-number");
  return numberPart ? parseEventNumber(parameterValue(numberPart)) : undefined;
}

/** `Subscription/123`, `https://ehr/fhir/Subscription/123/_history/2` -> `123`. */
export function subscriptionIdOf(ref: string | undefined): string | undefined {
  if (!ref) return undefined;
  const match = /(?:^|\/)Subscription\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]*)?$/.exec(ref);
  return match?.[1];
}

function eventKey(event: Json, index: number, focus: string | undefined, timestamp: unknown): string {
  if (typeof event.id === "string") return `id:${event.id}`;
  if (focus && typeof timestamp === "string") return `focus:${focus}@${timestamp}`;
  return `json:${JSON.stringify(event)}#${index}`;
}

/** R5 and R4B carry a SubscriptionStatus resource. */
function fromSubscriptionStatus(format: WireFormat, status: Json): Result<Notification, NotificationError> {
  const type = status.type;
  if (typeof type !== "string" || !TYPES.has(type)) return err("invalid-type");
  const since = parseEventNumber(status.eventsSinceSubscriptionStart);
  if (since === "invalid") return err("invalid-event-number");
  const events: NotificationEvent[] = [];
  for (const [i, raw] of asArray(status.notificationEvent).entries()) {
    const event = asObject(raw) ?? {};
    const n = eventNumberOf(event, false);
    if (n === "invalid") return err("invalid-event-number");
    const focus = reference(event.focus);
    events.push({ ...(n !== undefined ? { eventNumber: n } : {}), key: eventKey(event, i, focus, event.timestamp), ...(focus ? { focus } : {}) });
  }
  const subscriptionId = subscriptionIdOf(reference(status.subscription));
  return ok({
    format,
    type: type as NotificationType,
    ...(subscriptionId ? { subscriptionId } : {}),
    ...(typeof status.topic === "string" ? { topic: status.topic } : {}),
    ...(typeof status.status === "string" ? { status: status.status } : {}),
    ...(since !== undefined ? { eventsSinceSubscriptionStart: since } : {}),
    events,
  });
}

/**
 * A Parameters parameter's (or part's) `value[x]`, whichever type it has.
 * @see https://hl7.org/fhir/R4/parameters.html
 */
function parameterValue(p: Readonly<Record<string, unknown>>): unknown {
  for (const [k, v] of Object.entries(p)) if (k.startsWith("value")) return v;
  return undefined;
}

/**
 * The R4 Subscriptions Backport's status: a Parameters resource.
 * @see https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription-status-r4.html
 */
function fromParameters(params: Json): Result<Notification, NotificationError> {
  const parameters = asArray(params.parameter).map((p) => asObject(p) ?? {});
  const named = (name: string) => parameters.find((p) => p.name === name);
  const typeValue = named("type") ? parameterValue(named("type")!) : undefined;
  if (typeof typeValue !== "string" || !TYPES.has(typeValue)) return err(named("type") ? "invalid-type" : "not-a-notification");
  const sinceRaw = named("events-since-subscription-start");
  const since = sinceRaw ? parseEventNumber(parameterValue(sinceRaw)) : undefined;
  if (since === "invalid") return err("invalid-event-number");
  const events: NotificationEvent[] = [];
  for (const [i, p] of parameters.filter((x) => x.name === "notification-event").entries()) {
    const parts = asArray(p.part).map((x) => asObject(x) ?? {});
    const part = (name: string) => parts.find((x) => x.name === name);
    const n = eventNumberOf(p, true);
    if (n === "invalid") return err("invalid-event-number");
    const focusPart = part("focus");
    const focus = focusPart ? reference(focusPart.valueReference) : undefined;
    const timestamp = part("timestamp")?.valueInstant;
    events.push({ ...(n !== undefined ? { eventNumber: n } : {}), key: eventKey(p, i, focus, timestamp), ...(focus ? { focus } : {}) });
  }
  const subParam = named("subscription");
  const subscriptionId = subscriptionIdOf(subParam ? reference(subParam.valueReference) : undefined);
  const topic = named("topic") ? parameterValue(named("topic")!) : undefined;
  const status = named("status") ? parameterValue(named("status")!) : undefined;
  return ok({
    format: "R4-backport",
    type: typeValue as NotificationType,
    ...(subscriptionId ? { subscriptionId } : {}),
    ...(typeof topic === "string" ? { topic } : {}),
    ...(typeof status === "string" ? { status } : {}),
    ...(since !== undefined ? { eventsSinceSubscriptionStart: since } : {}),
    events,
  });
}

/**
 * Recognises a notification Bundle in any of the three wire forms and reads
 * its status: R5 (`subscription-notification`, SubscriptionStatus first),
 * R4B (`history`, SubscriptionStatus first), R4 Subscriptions Backport
 * (`history`, a Parameters status first). Anything else is refused.
 * @see https://hl7.org/fhir/R5/subscriptionstatus.html
 * @see https://hl7.org/fhir/uv/subscriptions-backport/notifications.html
 */
export function parseNotification(body: unknown): Result<Notification, NotificationError> {
  const bundle = asObject(body);
  if (!bundle || bundle.resourceType !== "Bundle") return err("not-a-bundle");
  const first = asObject(asObject(asArray(bundle.entry)[0])?.resource);
  if (bundle.type === "subscription-notification" && first?.resourceType === "SubscriptionStatus") return fromSubscriptionStatus("R5", first);
  if (bundle.type === "history" && first?.resourceType === "SubscriptionStatus") return fromSubscriptionStatus("R4B", first);
  if (bundle.type === "history" && first?.resourceType === "Parameters") return fromParameters(first);
  return err("not-a-notification");
}

/**
 * Reads `eventsSinceSubscriptionStart` from a `$status` answer: a Bundle of
 * SubscriptionStatus (R5, R4B) or Parameters (backport) resources, or one
 * such resource.
 * @see https://hl7.org/fhir/R5/subscription-operation-status.html
 */
export function parseStatusResponse(body: unknown): number | undefined {
  const resource = asObject(body);
  if (!resource) return undefined;
  const candidates =
    resource.resourceType === "Bundle" ? asArray(resource.entry).map((e) => asObject(asObject(e)?.resource)).filter((r): r is Json => r !== undefined) : [resource];
  for (const r of candidates) {
    const parsed = r.resourceType === "SubscriptionStatus" ? fromSubscriptionStatus("R5", r) : r.resourceType === "Parameters" ? fromParameters(r) : undefined;
    if (parsed?.ok && parsed.value.eventsSinceSubscriptionStart !== undefined) return parsed.value.eventsSinceSubscriptionStart;
  }
  return undefined;
}
