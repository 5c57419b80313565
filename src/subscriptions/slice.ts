import { eventNumberOf } from "./notification.ts";

type Json = Record<string, unknown>;

/** An event's number as notification.ts reads it; one it refuses, or none, is never a number here. */
function numberOf(event: Json, backport: boolean): number | undefined {
  const n = eventNumberOf(event, backport);
  return typeof n === "number" ? n : undefined;
}

function focusOf(event: Json, backport: boolean): string | undefined {
  if (backport) {
    const part = (Array.isArray(event.part) ? (event.part as Json[]) : []).find((x) => x.name === "focus");
    return (part?.valueReference as Json | undefined)?.reference as string | undefined;
  }
  return (event.focus as Json | undefined)?.reference as string | undefined;
}

const matches = (fullUrl: unknown, ref: string) => typeof fullUrl === "string" && (fullUrl === ref || fullUrl.endsWith(`/${ref}`) || ref.endsWith(`/${fullUrl}`));

/**
 * Removes already-delivered events from a notification Bundle that overlaps
 * what the channel has seen, so "events already seen are not sent again": the
 * status keeps only the other events, and entries that only carry a removed
 * event's focus go too. A Bundle that overlaps nothing is returned unchanged.
 * An event number is read exactly as parseNotification reads it
 * (`eventNumberOf`): a value the parser refuses is no number here, so such an
 * event is never dropped.
 * @see https://hl7.org/fhir/R5/subscriptions.html#events
 */
export function sliceNotification(bundle: Json, drop: ReadonlySet<number>): Json {
  if (drop.size === 0) return bundle;
  const entries = Array.isArray(bundle.entry) ? (bundle.entry as Json[]) : [];
  const status = entries[0]?.resource as Json | undefined;
  if (!status) return bundle;
  const backport = status.resourceType === "Parameters";
  const events: Json[] = backport
    ? ((status.parameter as Json[] | undefined) ?? []).filter((p) => p.name === "notification-event")
    : ((status.notificationEvent as Json[] | undefined) ?? []);
  const isDropped = (e: Json) => {
    const n = numberOf(e, backport);
    return n !== undefined && drop.has(n);
  };
  const kept = events.filter((e) => !isDropped(e));
  const dropped = events.filter(isDropped);
  const keptFoci = kept.map((e) => focusOf(e, backport)).filter((f): f is string => !!f);
  const droppedFoci = dropped.map((e) => focusOf(e, backport)).filter((f): f is string => !!f);

  const newStatus: Json = backport
    ? { ...status, parameter: ((status.parameter as Json[] | undefined) ?? []).filter((p) => p.name !== "notification-event" || kept.includes(p)) }
    : { ...status, notificationEvent: kept };
  const rest = entries.slice(1).filter((e) => {
    const onlyDropped = droppedFoci.some((f) => matches(e.fullUrl, f)) && !keptFoci.some((f) => matches(e.fullUrl, f));
    return !onlyDropped;
  });
  return { ...bundle, entry: [{ ...entries[0], resource: newStatus }, ...rest] };
}
