import type { EdgeBindings } from "../context.ts";
import type { ChannelObject } from "./channel/object.ts";

/** The channel's Durable Object, one per channel name; every route that talks to a channel gets it here. */
export function channelStub(env: EdgeBindings, name: string): DurableObjectStub<ChannelObject> {
  const ns = env.CHANNELS as DurableObjectNamespace<ChannelObject>;
  return ns.get(ns.idFromName(name));
}
