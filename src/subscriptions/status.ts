import type { Context } from "hono";
import type { EdgeHonoEnv } from "../context.ts";
import { channelStub } from "./channel-stub.ts";

/** `/status`'s channels: every channel, misconfigured ones included, with its sequence and each target's cursor. */
export async function channelsStatus(c: Context<EdgeHonoEnv>): Promise<unknown[]> {
  const config = c.get("config");
  const ok = await Promise.all(
    [...config.channels.values()].map(async (ch) => {
      try {
        return { name: ch.name, state: "ok", source: ch.source, sequencing: ch.sequencing, ...(await channelStub(c.env, ch.name).status(ch.name)) };
      } catch {
        return { name: ch.name, state: "ok", source: ch.source, error: "channel object unavailable" };
      }
    }),
  );
  const broken = [...config.brokenChannels].map(([name, issues]) => ({
    name,
    state: "misconfigured",
    issues: issues.map(({ field, code, message }) => ({ field, code, message })),
  }));
  return [...ok, ...broken].sort((a, b) => a.name.localeCompare(b.name));
}
