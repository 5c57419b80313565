import type { ChannelConfig } from "../../config/channel.ts";
import type { SubscriberStatus } from "../inbox.ts";
import { currentGap } from "./intake.ts";
import type { ChannelStore } from "./store.ts";
import type { ChannelStatus } from "./types.ts";

const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : null);

/** Where a target URL is shown (status, logs): origin and path, never a query that may hold a key. */
function showTarget(url: string): string {
  const u = new URL(url);
  return u.origin + u.pathname;
}

/**
 * The channel's part of `/status`: sequence, gaps, replay reach, each
 * configured target and each open WebSocket inbox connection; never a body.
 */
export function channelStatus(store: ChannelStore, channel: ChannelConfig | undefined, subscribers: SubscriberStatus[]): ChannelStatus {
  const state = store.state();
  const counts = store.counts();
  const gap = currentGap(store);
  const reach = store.replayReach();
  return {
    subscriptionId: state.subscriptionId,
    lastEventNumber: state.lastEvent ?? 0,
    nextDelivery: state.nextDelivery,
    handshakeAt: iso(state.handshakeAt),
    heartbeatAt: iso(state.heartbeatAt),
    lastNotificationAt: iso(state.lastNotificationAt),
    liveness: { checkedAt: iso(state.livenessCheckedAt), result: state.livenessResult },
    pendingDeliveries: counts.pendingNotifications,
    heldOutOfOrder: counts.held,
    pendingGap: gap ? { ...gap, since: iso(state.gapSince) } : null,
    gaps: store.recentGaps(20).map((g) => ({ from: g.from, to: g.to, outcome: g.outcome, at: iso(g.at)! })),
    unrecoverableEvents: store.unrecoverableEvents(),
    replay: {
      windowSeconds: Math.round((channel?.replayWindowMs ?? 0) / 1000),
      retained: reach.retained,
      oldestEvent: reach.oldestEvent,
      oldestDelivery: reach.oldestDelivery,
      oldestAt: iso(reach.oldestAt),
    },
    targets: store.targets(channel?.targets.map((t) => t.url) ?? []).map((t) => ({
      target: showTarget(t.url),
      cursor: t.cursor,
      lastEvent: t.lastEvent,
      delivered: t.delivered,
      pending: t.pending,
      failures: t.failures,
      nextAttemptAt: t.failures > 0 ? iso(t.nextAttemptAt) : null,
      lastStatus: t.lastStatus,
      dropped: t.dropped,
    })),
    subscribers,
  };
}
