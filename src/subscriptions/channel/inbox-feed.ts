import type { ChannelConfig } from "../../config/channel.ts";
import type { InboxFeed, InboxNotification } from "../inbox.ts";
import type { ChannelStore, StoredNotification } from "./store.ts";

/**
 * The inbox's view of the channel's `notifications` table: only what was
 * accepted in order (held notifications wait in their own table), in delivery
 * order. A client's position is the last event number under strict
 * sequencing, the delivery sequence number otherwise (as replay reads
 * them). Notifications stay for the replay window after every target has
 * them, so a reconnect's `since` reaches that far back.
 * @see docs/inbox.md
 */
export function storeFeed(store: ChannelStore, sequencing: ChannelConfig["sequencing"]): InboxFeed {
  const byEvent = sequencing === "strict";
  const toInbox = (n: StoredNotification): InboxNotification => ({
    seq: n.seq,
    // Under strict sequencing every stored notification carries its events; the fallback only guards odd rows.
    position: byEvent ? (n.lastEvent ?? 0) : n.seq,
    firstEvent: n.firstEvent,
    lastEvent: n.lastEvent,
    body: n.body,
  });
  return {
    after: (position, limit) => store.inboxAfter(position, byEvent ? "event" : "delivery", limit).map(toInbox),
    afterDelivery: (seq, limit) => store.inboxAfterDelivery(seq, limit).map(toInbox),
    head: () => {
      const state = store.state();
      const seq = state.nextDelivery - 1;
      return { seq, position: byEvent ? (state.lastEvent ?? 0) : seq };
    },
  };
}
