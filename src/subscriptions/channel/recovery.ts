import type { ChannelConfig } from "../../config/channel.ts";
import type { SourceConfig } from "../../config/types.ts";
import { parseNotification, parseStatusResponse } from "../notification.ts";
import { sliceNotification } from "../slice.ts";
import { countGap, decideRecovery, type EventRange } from "./sequencer.ts";
import { currentGap, noteGap, releaseHeld } from "./intake.ts";
import type { SourceGet } from "./source-client.ts";
import type { ChannelStore } from "./store.ts";

export interface RecoveryContext {
  store: ChannelStore;
  channel: ChannelConfig;
  /** The channel's source, undefined when misconfigured. */
  source: SourceConfig | undefined;
  get: SourceGet;
  now: () => number;
}

/** A `$events` answer, read but not yet applied. */
interface EventsAnswer {
  bundle?: Record<string, unknown>;
  numbers: number[];
  /** Why events are missing from it, when they are. */
  failure?: string;
}

/**
 * Asks the source's `Subscription/<id>/$events` for the gap (network only,
 * nothing written meanwhile).
 * @see https://hl7.org/fhir/R5/subscription-operation-events.html
 */
async function fetchEvents(ctx: RecoveryContext, gap: EventRange): Promise<EventsAnswer> {
  const subscriptionId = ctx.store.state().subscriptionId;
  if (!ctx.source) return { numbers: [], failure: "source misconfigured" };
  if (!subscriptionId) return { numbers: [], failure: "no subscription id known" };
  let text: string;
  let status: number;
  try {
    const response = await ctx.get(ctx.source, `Subscription/${encodeURIComponent(subscriptionId)}/$events?eventsSinceNumber=${gap.from}&eventsUntilNumber=${gap.to}`);
    status = response.status;
    text = await response.text();
  } catch {
    return { numbers: [], failure: "$events unreachable" };
  }
  if (status < 200 || status >= 300) return { numbers: [], failure: `$events unsupported or failed (HTTP ${status})` };
  let bundle: unknown;
  try {
    bundle = JSON.parse(text);
  } catch {
    return { numbers: [], failure: "$events answer is not JSON" };
  }
  const parsed = parseNotification(bundle);
  if (!parsed.ok) return { numbers: [], failure: `$events answer is not a notification bundle (${parsed.error})` };
  const numbers = parsed.value.events.map((e) => e.eventNumber).filter((n): n is number => n !== undefined);
  return { bundle: bundle as Record<string, unknown>, numbers };
}

/**
 * Fills a gap: fetches first, then applies the answer in one transaction
 * against the state as it is then (an `accept` may have run during the
 * fetch). What comes back is delivered before the held events; what does not
 * is recorded as a gap, and delivery goes on.
 */
export async function recoverGap(ctx: RecoveryContext, gap: EventRange): Promise<void> {
  const answer = await fetchEvents(ctx, gap);
  const { store, channel } = ctx;
  store.transaction(() => {
    const now = ctx.now();
    const state = store.state();
    const decision = decideRecovery(state.lastEvent ?? 0, gap, answer.numbers);
    if (decision.deliver && answer.bundle) {
      const { first, last, drop } = decision.deliver;
      const body = JSON.stringify(drop.length > 0 ? sliceNotification(answer.bundle, new Set(drop)) : answer.bundle);
      store.addNotification(first, last, body, now, channel.targets.map((t) => t.url));
    }
    const outcome = answer.failure ?? "$events did not return these events";
    for (const r of decision.unrecoverable) store.addGap(r.from, r.to, outcome, now);
    store.updateState({ lastEvent: Math.max(state.lastEvent ?? 0, decision.lastEvent), gapSince: null });
    releaseHeld(store, channel, now);
  });
}

/** The gap due for recovery (its grace over), if any. */
export function gapDue(store: ChannelStore, channel: ChannelConfig, now: number): EventRange | undefined {
  if (channel.sequencing !== "strict") return undefined;
  const since = store.state().gapSince;
  if (since === null || now < since + channel.gapGraceMs) return undefined;
  return currentGap(store);
}

/**
 * No notification of any kind within `heartbeatPeriod` x 2: asks the source's
 * `$status`; a count beyond what arrived is a gap, recovered at once.
 * @see https://hl7.org/fhir/R5/subscription-operation-status.html
 */
export async function checkLiveness(ctx: RecoveryContext): Promise<void> {
  const { store, channel } = ctx;
  if (!channel.heartbeatPeriod) return;
  const state = store.state();
  const last = Math.max(state.lastNotificationAt ?? 0, state.livenessCheckedAt ?? 0);
  const now = ctx.now();
  if (last === 0 || now < last + channel.heartbeatPeriod * 2000) return;
  store.updateState({ livenessCheckedAt: now });
  if (!state.subscriptionId || !ctx.source) {
    store.updateState({ livenessResult: "silent; no subscription id to ask $status" });
    return;
  }
  let count: number | undefined;
  let result: string;
  try {
    const response = await ctx.get(ctx.source, `Subscription/${encodeURIComponent(state.subscriptionId)}/$status`);
    const body = response.ok ? ((await response.json()) as unknown) : (await response.body?.cancel(), undefined);
    count = parseStatusResponse(body);
    result = response.ok ? `$status answered (events since start: ${count ?? "unknown"})` : `$status failed (HTTP ${response.status})`;
  } catch {
    result = "$status unreachable";
  }
  const gap = store.transaction(() => {
    store.updateState({ livenessResult: result });
    if (channel.sequencing !== "strict") return undefined;
    noteGap(store, countGap(store.state().lastEvent ?? 0, count), ctx.now());
    return currentGap(store);
  });
  if (gap) await recoverGap(ctx, gap);
}
