import type { ChannelConfig } from "../../config/channel.ts";
import type { ChannelStore } from "./store.ts";

/**
 * Storage upkeep, run by every alarm (twice is harmless): notifications every
 * target has go once outside the replay window; the retention limits bound
 * what a target gone for good can pile up; per-bundle identities expire.
 */
export function sweep(store: ChannelStore, channel: ChannelConfig, now: number): void {
  store.transaction(() => {
    store.deleteSettled(now - channel.replayWindowMs);
    store.enforceRetention(channel.retention.maxEvents, now - channel.retention.maxAgeMs);
    store.deleteSeenKeys(now - channel.retention.maxAgeMs);
  });
}

/** The next time anything is due: a target's retry, a gap's grace, a liveness check, the end of a replay window or of retention. */
export function nextAlarmAt(store: ChannelStore, channel: ChannelConfig, now: number): number | undefined {
  const due: number[] = [];
  const state = store.state();
  const { nextAttempt, oldestSettled, oldestPendingAt } = store.due();
  if (nextAttempt !== null) due.push(Math.max(now, nextAttempt));
  if (oldestSettled !== null) due.push(oldestSettled + channel.replayWindowMs);
  if (oldestPendingAt !== null) due.push(oldestPendingAt + channel.retention.maxAgeMs);
  if (state.gapSince !== null) due.push(state.gapSince + channel.gapGraceMs);
  if (channel.heartbeatPeriod) {
    const last = Math.max(state.lastNotificationAt ?? 0, state.livenessCheckedAt ?? 0);
    if (last > 0) due.push(last + channel.heartbeatPeriod * 2000 + 50);
  }
  return due.length > 0 ? Math.max(now, Math.min(...due)) : undefined;
}
