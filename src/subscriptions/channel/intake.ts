import type { ChannelConfig } from "../../config/channel.ts";
import type { Notification } from "../notification.ts";
import { sliceNotification } from "../slice.ts";
import { countGap, decideEvents, keepIncomingHeld, pendingGap, type EventRange } from "./sequencer.ts";
import type { ChannelStore } from "./store.ts";
import type { AcceptResult } from "./types.ts";

/** The Bundle text without the given event numbers (the very same text when there are none). */
export function sliced(body: string, drop: readonly number[]): string {
  if (drop.length === 0) return body;
  return JSON.stringify(sliceNotification(JSON.parse(body) as Record<string, unknown>, new Set(drop)));
}

const targetsOf = (channel: ChannelConfig) => channel.targets.map((t) => t.url);

/**
 * Applies one notification to the store: the caller runs this inside one
 * transaction, so a notification and its outbox rows are stored together or
 * not at all, before the 200 goes back.
 */
export function applyNotification(store: ChannelStore, channel: ChannelConfig, notification: Notification, body: string, now: number): AcceptResult {
  store.ensureTargets(targetsOf(channel), now);
  store.updateState({ channel: channel.name, lastNotificationAt: now, ...(notification.subscriptionId ? { subscriptionId: notification.subscriptionId } : {}) });
  switch (notification.type) {
    case "handshake":
    case "heartbeat":
    case "query-status":
      store.updateState(notification.type === "handshake" ? { handshakeAt: now } : { heartbeatAt: now });
      // A count beyond what arrived is a gap, whatever announced it (a handshake after a reactivation too).
      if (channel.sequencing === "strict") noteGap(store, countGap(store.state().lastEvent ?? 0, notification.eventsSinceSubscriptionStart), now);
      return { ok: true, stored: 0, duplicates: 0, held: 0 };
    default:
      return applyEvents(store, channel, notification, body, now);
  }
}

function applyEvents(store: ChannelStore, channel: ChannelConfig, notification: Notification, body: string, now: number): AcceptResult {
  const events = notification.events;
  if (channel.sequencing === "none") {
    store.addNotification(null, null, body, now, targetsOf(channel));
    return { ok: true, stored: Math.max(1, events.length), duplicates: 0, held: 0 };
  }
  if (channel.sequencing === "per-bundle") {
    const fresh = events.filter((e) => !store.hasSeenKey(e.key));
    if (events.length > 0 && fresh.length === 0) return { ok: true, stored: 0, duplicates: events.length, held: 0 };
    for (const e of fresh) store.addSeenKey(e.key, now);
    store.addNotification(null, null, body, now, targetsOf(channel));
    return { ok: true, stored: fresh.length || 1, duplicates: events.length - fresh.length, held: 0 };
  }

  let numbers = events.map((e) => e.eventNumber);
  if (numbers.some((n) => n === undefined)) {
    // The backport allows an event without a number when the bundle holds one event: its number is then eventsSinceSubscriptionStart.
    if (events.length === 1 && notification.eventsSinceSubscriptionStart !== undefined) numbers = [notification.eventsSinceSubscriptionStart];
    else
      return {
        ok: false,
        code: "missing-event-number",
        message: `Channel ${channel.name} uses strict sequencing, but an event has no eventNumber (use sequencing "per-bundle" or "none" for such servers)`,
      };
  }
  if (numbers.length === 0) return { ok: true, stored: 0, duplicates: 0, held: 0 };
  const decision = decideEvents(store.state().lastEvent ?? 0, numbers as number[]);
  let stored = 0;
  let held = 0;
  if (decision.deliver) {
    const part = decision.deliver;
    store.addNotification(part.first, part.last, sliced(body, part.drop), now, targetsOf(channel));
    store.updateState({ lastEvent: part.last });
    stored = part.last - part.first + 1;
  }
  if (decision.hold) {
    const part = decision.hold;
    const kept = (numbers as number[]).filter((n) => !part.drop.includes(n));
    held = new Set(kept).size;
    if (keepIncomingHeld(store.heldAt(part.first), part)) store.putHeld({ first: part.first, last: part.last, events: [...new Set(kept)], body: sliced(body, part.drop) }, now);
    noteGap(store, decision.gap, now);
  }
  releaseHeld(store, channel, now);
  return { ok: true, stored, duplicates: decision.duplicates.length, held };
}

/** Records a gap: the grace window starts at the first sighting; the announced end only grows. */
export function noteGap(store: ChannelStore, gap: EventRange | undefined, now: number): void {
  if (!gap) return;
  const state = store.state();
  store.updateState({ gapTo: Math.max(gap.to, state.gapTo ?? 0), gapSince: state.gapSince ?? now });
}

/** The missing range right now, if any. */
export function currentGap(store: ChannelStore): EventRange | undefined {
  const state = store.state();
  return pendingGap(state.lastEvent ?? 0, store.firstHeld()?.first, state.gapTo ?? undefined);
}

/**
 * Moves held notifications that now continue the sequence into the outbox, in
 * event order (a held one with a hole inside delivers up to the hole and is
 * held again from there), then clears the gap fields once nothing is missing.
 */
export function releaseHeld(store: ChannelStore, channel: ChannelConfig, now: number): void {
  for (;;) {
    const h = store.firstHeld();
    const last = store.state().lastEvent ?? 0;
    if (!h || h.first > last + 1) break;
    store.deleteHeld(h.first);
    const decision = decideEvents(last, h.events);
    if (decision.deliver) {
      store.addNotification(decision.deliver.first, decision.deliver.last, sliced(h.body, decision.deliver.drop), now, targetsOf(channel));
      store.updateState({ lastEvent: decision.deliver.last });
    }
    if (decision.hold) {
      const part = decision.hold;
      if (keepIncomingHeld(store.heldAt(part.first), part)) {
        store.putHeld({ first: part.first, last: part.last, events: h.events.filter((n) => !part.drop.includes(n)), body: sliced(h.body, part.drop) }, now);
      }
    }
  }
  const state = store.state();
  const gap = currentGap(store);
  if (!gap) store.updateState({ gapSince: null, ...(state.gapTo !== null && state.gapTo <= (state.lastEvent ?? 0) ? { gapTo: null } : {}) });
  else if (state.gapSince === null) store.updateState({ gapSince: now });
}
