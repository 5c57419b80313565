import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseNotification, parseStatusResponse, type Notification, type NotificationError } from "../../../src/subscriptions/notification.ts";
import { notification, type Format, type Kind } from "../../fixtures/notifications.ts";
import { fuzzParameters, fuzzTimeout } from "../../fixtures/fuzz.ts";

const ERRORS: ReadonlySet<NotificationError> = new Set(["not-a-bundle", "not-a-notification", "invalid-event-number", "invalid-type"]);
const TYPES: ReadonlySet<string> = new Set(["handshake", "heartbeat", "event-notification", "query-status", "query-event"]);
const FORMAT_OF = { R5: "R5", R4B: "R4B", R4: "R4-backport" } as const;

const eventNumber = fc.oneof(fc.nat({ max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const valid = fc.record({
  format: fc.constantFrom<Format>("R5", "R4B", "R4"),
  kind: fc.constantFrom<Kind>("handshake", "heartbeat", "event-notification", "query-event", "query-status"),
  events: fc.uniqueArray(eventNumber, { maxLength: 5 }),
  since: fc.option(eventNumber, { nil: undefined }),
  subscriptionId: fc.stringMatching(/^[A-Za-z0-9\-.]{1,64}$/),
  fullResource: fc.boolean(),
});
type Valid = typeof valid extends fc.Arbitrary<infer T> ? T : never;
const build = (v: Valid) =>
  notification(v.format, v.kind, {
    events: v.events,
    subscription: `https://ehr.example/fhir/Subscription/${v.subscriptionId}`,
    fullResource: v.fullResource,
    ...(v.since !== undefined ? { eventsSinceSubscriptionStart: v.since } : {}),
  });

/** Every place in a JSON value, as a path of keys and indexes. */
function paths(value: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(at);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...at, i], out));
  else if (value !== null && typeof value === "object") for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  return out;
}

/** Values a broken or hostile server writes where another belongs. */
const junk = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom("-1", "1.5", "1e3", "99999999999999999999", "9007199254740992", " 7", "", "0x10", -1, 1.5, 2 ** 53, -0, null, [], {}, "Subscription/../x"),
);
const mutation = fc.record({ at: fc.nat(), op: fc.constantFrom("replace", "delete", "wrap", "stringify"), with: junk });

function mutate(doc: unknown, m: { at: number; op: string; with: unknown }): unknown {
  const copy = structuredClone(doc);
  const all = paths(copy);
  const path = all[m.at % all.length]!;
  if (path.length === 0) return m.op === "wrap" ? [copy] : m.with;
  const parent = path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<string | number, unknown>)[key], copy) as Record<string | number, unknown>;
  const key = path.at(-1)!;
  if (m.op === "delete") {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else if (m.op === "wrap") parent[key] = [parent[key]];
  else if (m.op === "stringify") parent[key] = JSON.stringify(parent[key]) ?? "";
  else parent[key] = m.with;
  return copy;
}

/** A result is well-formed whatever the input: a typed error, or a notification whose numbers can be trusted. */
function checkResult(result: ReturnType<typeof parseNotification>): void {
  if (!result.ok) {
    if (!ERRORS.has(result.error)) throw new Error(`untyped error ${String(result.error)}`);
    return;
  }
  const n: Notification = result.value;
  const count = (x: number | undefined) => x === undefined || (Number.isSafeInteger(x) && x >= 0);
  if (!TYPES.has(n.type) || !count(n.eventsSinceSubscriptionStart)) throw new Error(`bad notification ${JSON.stringify(n)}`);
  for (const e of n.events) if (!count(e.eventNumber) || typeof e.key !== "string") throw new Error(`bad event ${JSON.stringify(e)}`);
  if (n.subscriptionId !== undefined && !/^[A-Za-z0-9\-.]{1,64}$/.test(n.subscriptionId)) throw new Error(`bad subscription id ${n.subscriptionId}`);
}

function parseSafely(body: unknown): ReturnType<typeof parseNotification> {
  try {
    return parseNotification(body);
  } catch (error) {
    throw new Error(`parseNotification threw ${String(error)}`);
  }
}

function checkStatus(body: unknown): void {
  let since: number | undefined;
  try {
    since = parseStatusResponse(body);
  } catch (error) {
    throw new Error(`parseStatusResponse threw ${String(error)}`);
  }
  if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) throw new Error(`bad eventsSinceSubscriptionStart ${since}`);
}

describe("notification parsing: the three wire forms give a result or a typed error, never a throw", () => {
  it(
    "a notification in any of the three forms reads back as what it says",
    () => {
      fc.assert(
        fc.property(valid, (v) => {
          const body = JSON.parse(JSON.stringify(build(v))) as unknown;
          const since = v.since ?? (v.events.length ? Math.max(...v.events) : 0);
          expect(parseNotification(body)).toMatchObject({
            ok: true,
            value: { format: FORMAT_OF[v.format], type: v.kind, subscriptionId: v.subscriptionId, eventsSinceSubscriptionStart: since, events: v.events.map((eventNumber) => ({ eventNumber })) },
          });
          // A $status answer: the status resource alone, and in a Bundle.
          const status = (body as { entry: Array<{ resource: unknown }> }).entry[0]!.resource;
          expect(parseStatusResponse(status)).toBe(since);
          expect(parseStatusResponse({ resourceType: "Bundle", type: "searchset", entry: [{ resource: status }] })).toBe(since);
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(300),
  );

  it(
    "a notification changed anywhere (a value replaced, removed, wrapped or stringified) gives a result or a typed error",
    () => {
      fc.assert(
        fc.property(valid, fc.array(mutation, { minLength: 1, maxLength: 3 }), (v, mutations) => {
          let body: unknown = build(v);
          for (const m of mutations) body = mutate(body, m);
          checkResult(parseSafely(body));
          checkStatus(body);
          const first = (body as { entry?: Array<{ resource?: unknown }> } | null)?.entry?.[0]?.resource;
          checkStatus(first);
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(400),
  );

  it(
    "any JSON value gives a result or a typed error",
    () => {
      fc.assert(
        fc.property(fc.jsonValue({ maxDepth: 4 }), (body) => {
          checkResult(parseSafely(body));
          checkStatus(body);
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(200),
  );
});
