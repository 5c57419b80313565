import type { Context } from "hono";
import { fromEdgeOrigin } from "../auth/inbound/session-cookie.ts";
import type { EdgeHonoEnv } from "../context.ts";
import { EdgeError, ForbiddenError, InvalidRequestError } from "../errors.ts";
import { requireChannel } from "../config/lookup.ts";
import { inboxRequest } from "./inbox.ts";
import { channelStub } from "./channel-stub.ts";

/**
 * `GET /channels/:channel/ws`: the channel's WebSocket inbox. The client has
 * been authenticated on the upgrade request like any client of the edge
 * (`sessionOrInbound`: `Authorization`, `X-Api-Key`, or in a browser the
 * console's session cookie); a cookie only counts when the upgrade's
 * `Origin` is the edge's own (else 403: browsers send cookies on a
 * WebSocket from any page, and no CORS check stands in the way). The client
 * must be an admin client or one the channel lists in `subscribers` (else
 * 403), and the request a WebSocket upgrade (else 426), all before anything
 * is upgraded. The channel's Durable Object then accepts the socket.
 * @see docs/inbox.md
 */
export const inboxHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  const name = c.req.param("channel") ?? "";
  c.set("logRoute", "channels/{channel}/ws");
  const config = c.get("config");
  const channel = requireChannel(config, name);
  c.set("logSource", channel.source);
  if (c.get("viaSession") && !fromEdgeOrigin(c)) {
    throw new ForbiddenError("cross-origin-websocket", "A WebSocket signed in with the console's session cookie must come from the edge's own pages (Origin)");
  }
  const client = c.get("client");
  if (!config.adminClients.has(client.name) && !channel.subscribers.includes(client.name)) {
    throw new ForbiddenError("not-a-subscriber", `Client ${client.name} may not read channel ${name}: it is neither an admin client nor in the channel's subscribers`);
  }
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    throw new EdgeError(426, "not-supported", "upgrade-required", `GET /channels/${name}/ws is a WebSocket endpoint: send Upgrade: websocket`, {
      headers: { Upgrade: "websocket" },
    });
  }
  const sinceRaw = c.req.query("since");
  if (sinceRaw !== undefined && !/^\d{1,15}$/.test(sinceRaw)) throw new InvalidRequestError("invalid-since", "since must be a non-negative event number");
  const since = sinceRaw === undefined ? undefined : Number(sinceRaw);

  const answer = await channelStub(c.env, name).fetch(inboxRequest(c.req.raw, name, client.name, since));
  if (answer.status !== 101 || !answer.webSocket) {
    await answer.body?.cancel();
    throw new EdgeError(503, "transient", "inbox-unavailable", `The inbox of channel ${name} could not take the connection (HTTP ${answer.status})`);
  }
  // A fresh 101 carrying the request id, so nothing downstream copies the upgrade response.
  return new Response(null, { status: 101, webSocket: answer.webSocket, headers: { "X-Request-Id": c.get("requestId") } });
};
