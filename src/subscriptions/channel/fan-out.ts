import type { ChannelConfig, TargetConfig } from "../../config/channel.ts";
import { deliverNotification } from "./deliverer.ts";
import { deliveryBackoff } from "./sequencer.ts";
import type { ChannelStore } from "./store.ts";

/** Notifications one target gets in one pass before the object yields (an alarm takes over). */
export const PUMP_BATCH = 200;

export interface FanOutDeps {
  fetch: (request: Request) => Promise<Response>;
  now: () => number;
  random: () => number;
}

/** How a pass for one target ended. */
export type PumpResult = "caught-up" | "failed" | "more";

/**
 * Delivers one target's pending notifications in delivery order until it is
 * caught up, a delivery fails (backoff recorded), or the batch is used up.
 * Each outcome is written in its own transaction after the POST returns.
 */
export async function pumpTarget(store: ChannelStore, channel: ChannelConfig, target: TargetConfig, deps: FanOutDeps): Promise<PumpResult> {
  for (let i = 0; i < PUMP_BATCH; i++) {
    const next = store.nextPending(target.url);
    if (!next) return "caught-up";
    const status = await deliverNotification(deps.fetch, channel.name, target, next, deps.now());
    if (status >= 200 && status < 300) {
      store.transaction(() => {
        const now = deps.now();
        store.recordDelivered(target.url, next, status, now);
        store.deleteSettled(now - channel.replayWindowMs);
      });
      continue;
    }
    store.transaction(() => {
      const failures = (store.targets([target.url])[0]?.failures ?? 0) + 1;
      store.recordFailure(target.url, failures, deps.now() + deliveryBackoff(failures, target.maxBackoffMs, deps.random), status === 0 ? "unreachable" : String(status));
    });
    return "failed";
  }
  return "more";
}

/** The targets that may be tried now: something pending and no backoff running. */
export function targetsDue(store: ChannelStore, channel: ChannelConfig, now: number): TargetConfig[] {
  const rows = new Map(store.targets(channel.targets.map((t) => t.url)).map((r) => [r.url, r]));
  return channel.targets.filter((t) => {
    const row = rows.get(t.url);
    return row !== undefined && row.pending > 0 && row.nextAttemptAt <= now;
  });
}
