import type { ChannelConfig } from "../config/channel.ts";
import type { Resource } from "../fhir/types.ts";

const BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";
/** Tags the Subscriptions the edge manages, so registering again finds and updates the same one. */
export const CHANNEL_TAG_SYSTEM = "https://github.com/fhir-edge/fhir-edge/channel";

function criteriaString(channel: ChannelConfig): string[] {
  const byType = new Map<string, string[]>();
  for (const f of channel.filterBy) {
    const type = f.resourceType ?? "";
    const name = f.modifier ? `${f.filterParameter}:${f.modifier}` : f.filterParameter;
    const value = f.comparator && f.comparator !== "eq" ? `${f.comparator}${f.value}` : f.value;
    byType.set(type, [...(byType.get(type) ?? []), `${encodeURIComponent(name)}=${encodeURIComponent(value)}`]);
  }
  return [...byType].map(([type, params]) => `${type}?${params.join("&")}`);
}

/**
 * The Subscription `register` creates or updates at the source: R5, or the
 * R4 / R4B Subscriptions Backport profile, pointing at the edge's webhook with
 * the channel secret as a header, with the channel's topic, filters, payload,
 * heartbeat and timeout.
 * @see https://hl7.org/fhir/R5/subscription.html
 * @see https://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition-backport-subscription.html
 */
export function buildSubscription(channel: ChannelConfig, endpoint: string, id?: string): Resource {
  const tag = { system: CHANNEL_TAG_SYSTEM, code: channel.name };
  const reason = `fhir-edge channel ${channel.name}`;
  if (channel.fhirVersion === "R5") {
    return {
      resourceType: "Subscription",
      ...(id ? { id } : {}),
      meta: { tag: [tag] },
      status: "requested",
      name: channel.name,
      reason,
      topic: channel.topic,
      ...(channel.filterBy.length ? { filterBy: channel.filterBy } : {}),
      channelType: { system: "http://terminology.hl7.org/CodeSystem/subscription-channel-type", code: "rest-hook" },
      endpoint,
      parameter: [{ name: "X-Api-Key", value: channel.secret }],
      ...(channel.heartbeatPeriod ? { heartbeatPeriod: channel.heartbeatPeriod } : {}),
      ...(channel.timeout ? { timeout: channel.timeout } : {}),
      contentType: "application/fhir+json",
      content: channel.payload,
    };
  }
  const channelExtensions = [
    ...(channel.heartbeatPeriod ? [{ url: `${BACKPORT}/backport-heartbeat-period`, valueUnsignedInt: channel.heartbeatPeriod }] : []),
    ...(channel.timeout ? [{ url: `${BACKPORT}/backport-timeout`, valueUnsignedInt: channel.timeout }] : []),
  ];
  const criteria = criteriaString(channel);
  return {
    resourceType: "Subscription",
    ...(id ? { id } : {}),
    meta: { profile: [`${BACKPORT}/backport-subscription`], tag: [tag] },
    status: "requested",
    reason,
    criteria: channel.topic,
    ...(criteria.length ? { _criteria: { extension: criteria.map((valueString) => ({ url: `${BACKPORT}/backport-filter-criteria`, valueString })) } } : {}),
    channel: {
      ...(channelExtensions.length ? { extension: channelExtensions } : {}),
      type: "rest-hook",
      endpoint,
      payload: "application/fhir+json",
      _payload: { extension: [{ url: `${BACKPORT}/backport-payload-content`, valueCode: channel.payload }] },
      header: [`X-Api-Key: ${channel.secret}`],
    },
  };
}

/** The same Subscription with the channel secret blanked, for answers and logs. */
export function redactSubscription(resource: Record<string, unknown>, secret: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify(resource).replaceAll(JSON.stringify(secret).slice(1, -1), "***")) as Record<string, unknown>;
}
