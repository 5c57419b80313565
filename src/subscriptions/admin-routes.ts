import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { InvalidRequestError, UpstreamUnavailableError } from "../errors.ts";
import type { ForwardDeps } from "../upstream/forward.ts";
import { sourceClient } from "../upstream/source-client.ts";
import { edgeRoot } from "../routes.ts";
import { requireChannel, requireSource } from "../config/lookup.ts";
import { buildSubscription, CHANNEL_TAG_SYSTEM, redactSubscription } from "./subscription-resource.ts";
import { channelStub } from "./channel-stub.ts";
import { fhirJson } from "../fhir/response.ts";

/**
 * `POST /admin/channels/:channel/register`: creates, or updates, the channel's
 * Subscription at its source (fhir-tbs parity), pointing at
 * `<edge>/webhooks/<channel>` with the channel secret as a header. The
 * Subscription is found again by the edge's tag (or the id recorded at the
 * last registration), so registering twice updates one Subscription.
 * @see docs/relay.md#registering-the-subscription
 */
export const registerHandler =
  (deps: ForwardDeps) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    const name = c.req.param("channel") ?? "";
    c.set("logRoute", "admin/channels/{channel}/register");
    const config = c.get("config");
    const channel = requireChannel(config, name);
    const source = requireSource(config, channel.source);
    c.set("logSource", source.name);
    const client = sourceClient(source, c.env, deps);
    const requestId = c.get("requestId");
    const call = async (method: string, path: string, body: string | null) => {
      const { response } = await client.send({
        method,
        path,
        requestId,
        headers: new Headers({ Accept: "application/fhir+json", ...(body ? { "Content-Type": "application/fhir+json" } : {}) }),
        body: body === null ? null : (new TextEncoder().encode(body).buffer as ArrayBuffer),
        retryable: method !== "POST",
        signal: c.req.raw.signal,
      });
      return response;
    };

    const stub = channelStub(c.env, name);
    let id = (await stub.subscriptionId()) ?? undefined;
    if (!id) {
      const search = await call("GET", `/Subscription?_tag=${encodeURIComponent(`${CHANNEL_TAG_SYSTEM}|${name}`)}`, null);
      if (search.ok) {
        const bundle = (await search.json()) as { entry?: Array<{ resource?: { id?: string } }> };
        id = bundle.entry?.find((e) => e.resource?.id)?.resource?.id;
      } else await search.body?.cancel();
    }
    const endpoint = `${edgeRoot(c, config.publicUrl, "register")}/webhooks/${name}`;
    const resource = buildSubscription(channel, endpoint, id);
    const response = id
      ? await call("PUT", `/Subscription/${encodeURIComponent(id)}`, JSON.stringify(resource))
      : await call("POST", "/Subscription", JSON.stringify(resource));
    const text = await client.text(response, requestId);
    if (!response.ok) {
      throw new UpstreamUnavailableError("registration-failed", `Source ${source.name} refused the Subscription for channel ${name} (HTTP ${response.status})`);
    }
    let saved: Record<string, unknown> = {};
    try {
      saved = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // a server answering 201 with no body: the id comes from Location
    }
    const location = response.headers.get("Location") ?? "";
    const savedId = typeof saved.id === "string" ? saved.id : /Subscription\/([^/]+)/.exec(location)?.[1];
    if (!savedId) throw new UpstreamUnavailableError("registration-failed", `Source ${source.name} did not say which Subscription it saved for channel ${name}`);
    await stub.setSubscription(name, savedId);
    return fhirJson(redactSubscription({ ...resource, ...saved, id: savedId }, channel.secret), { status: id ? 200 : 201 });
  };

/**
 * `GET /admin/channels/:channel/events?since=N`: the retained notifications
 * after event N, as a `collection` Bundle of notification Bundles, so a target
 * that lost its own state can catch up.
 */
export const replayHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  const name = c.req.param("channel") ?? "";
  c.set("logRoute", "admin/channels/{channel}/events");
  requireChannel(c.get("config"), name);
  const sinceRaw = c.req.query("since") ?? "0";
  if (!/^\d{1,15}$/.test(sinceRaw)) throw new InvalidRequestError("invalid-since", "since must be a non-negative event number");
  const bodies = await channelStub(c.env, name).events(name, Number(sinceRaw));
  const bundle = {
    resourceType: "Bundle",
    type: "collection",
    total: bodies.length,
    entry: bodies.map((b) => ({ resource: JSON.parse(b) as unknown })),
  };
  return fhirJson(bundle);
};
