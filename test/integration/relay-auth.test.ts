/**
 * Gap recovery goes through the same authenticated client as the proxy: the subscription
 * source is behind OAuth (the oidc-provider peer issues and checks its tokens), and when the
 * token the edge holds is revoked between notifications, the channel's `$events` call is
 * refused 401, the edge drops the token, fetches a new one and retries once, and the missing
 * event is recovered instead of given up.
 * @see https://hl7.org/fhir/R5/subscription-operation-events.html
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventNumbersOf, notification } from "../fixtures/notifications.ts";
import { startOAuthServer, type OAuthServer } from "../peers/oauth-server.ts";
import { startSubscriptionSource, type SubscriptionSource } from "../peers/subscription-source.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../peers/webhook-receiver.ts";
import { startEdge, type Edge } from "./support/edge.ts";
import { eventually } from "./support/poll.ts";

const CLIENT_ID = "edge-relay";
const CLIENT_SECRET = "relay-client-secret-3b9d";
const CHANNEL_SECRET = "relay-auth-channel-secret";
const SUBSCRIPTION = "relay-auth";
let oauth: OAuthServer;
let source: SubscriptionSource;
let receiver: WebhookReceiver;
let edge: Edge;

beforeAll(async () => {
  oauth = await startOAuthServer({ clients: [{ clientId: CLIENT_ID, secret: CLIENT_SECRET, authMethod: "client_secret_basic" }] });
  source = await startSubscriptionSource("/fhir", {
    authorize: async (h) => !!h?.startsWith("Bearer ") && (await oauth.verifyAccessToken(h.slice(7))),
  });
  receiver = await startWebhookReceiver();
  source.setSubscription(SUBSCRIPTION, { format: "R5", count: 0, eventsSupported: true });
  edge = await startEdge(
    {
      FHIR_SOURCE_SUBS: `fhir+${source.base}?client_id=${CLIENT_ID}&client_secret=env:SUBS_SECRET&token_url=${encodeURIComponent(oauth.tokenUrl)}&retry_backoff_factor=0.01&max_attempts=2`,
      FHIR_CHANNELS: JSON.stringify({
        guarded: {
          source: "subs",
          topic: "http://hl7.org/SubscriptionTopic/admission",
          secret: "env:CHANNEL_SECRET",
          fhirVersion: "R5",
          gapGracePeriod: 0,
          targets: [{ url: receiver.url("guarded"), maxBackoff: 1 }],
        },
      }),
    },
    { SUBS_SECRET: CLIENT_SECRET, CHANNEL_SECRET, TOKEN_CACHE_KEY: "a-test-key-for-sealing-tokens-in-kv" },
  );
});

afterAll(async () => {
  await edge?.close();
  await Promise.all([receiver?.close(), source?.close(), oauth?.close()]);
});

/** Posts event `n` as the source would, after the source has counted up to it. */
async function notify(n: number): Promise<number> {
  source.setSubscription(SUBSCRIPTION, { count: n });
  const body = notification("R5", "event-notification", { subscription: `${source.base}/Subscription/${SUBSCRIPTION}`, events: [n], base: source.base });
  const res = await edge.fetch("/webhooks/guarded", { method: "POST", headers: { "Content-Type": "application/fhir+json", "X-Api-Key": CHANNEL_SECRET }, body: JSON.stringify(body) });
  await res.body?.cancel();
  return res.status;
}

const delivered = () => [...new Set(receiver.deliveries("guarded").filter((d) => d.ok).flatMap((d) => eventNumbersOf(JSON.parse(d.body))))];

/** Bounded wait until the target has `count` distinct events (or the time is up). */
async function untilDelivered(count: number, timeoutMs = 20_000): Promise<number[]> {
  return eventually(delivered, (events) => events.length >= count, { timeoutMs, everyMs: 150 });
}

const eventsCalls = () => source.answers.filter((a) => a.path.includes("/$events"));

describe("$events gap recovery through the authenticated client", () => {
  it("a token revoked at the OAuth server between notifications: $events is refused 401, a new token is fetched, the missing event is recovered and delivered in order", async () => {
    // Event 2 never reaches the edge: the first $events call fetches the first token.
    expect(await notify(1)).toBe(200);
    expect(await notify(3)).toBe(200);
    expect(await untilDelivered(3)).toEqual([1, 2, 3]);
    expect(eventsCalls().map((a) => a.status)).toEqual([200]);
    expect(oauth.tokensIssued(CLIENT_ID)).toBe(1);

    await oauth.revokeAll();

    // Event 4 is lost on the way; only $events, with a token the source accepts, can return it.
    expect(await notify(5)).toBe(200);
    expect(await untilDelivered(5)).toEqual([1, 2, 3, 4, 5]);
    expect(eventsCalls().map((a) => a.status)).toEqual([200, 401, 200]);
    expect(oauth.tokensIssued(CLIENT_ID)).toBe(2);
  });
});
