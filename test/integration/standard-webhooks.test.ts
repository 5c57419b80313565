/**
 * Standard Webhooks on the wire (docs/relay.md#standard-webhooks-signatures): the real Worker
 * relays to the loopback webhook receiver, which verifies every delivery with the
 * `standardwebhooks` npm package, as a receiver written from the docs would. A retried delivery
 * keeps its webhook-id.
 */
import { createHmac } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { notification } from "../fixtures/notifications.ts";
import { startWebhookReceiver, type Delivery, type WebhookReceiver } from "../peers/webhook-receiver.ts";
import { startEdge, type Edge } from "./support/edge.ts";
import { eventually } from "./support/poll.ts";

const SECRET = "standard-webhooks-channel-secret";
const NEW_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_KEY = "old-plain-signing-secret";
let receiver: WebhookReceiver;
let edge: Edge;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  const target = (name: string, signing: Record<string, unknown>) => ({ url: receiver.url(name), maxBackoff: 1, ...signing });
  receiver.control("whsec", { verify: [NEW_KEY] });
  receiver.control("plain", { verify: [OLD_KEY] });
  // A rotation: the edge signs with [new, old]; one receiver still holds the old secret, one the new.
  receiver.control("rot-old", { verify: [OLD_KEY] });
  receiver.control("rot-new", { verify: [NEW_KEY] });
  receiver.control("retry", { verify: [NEW_KEY], fail: 2, status: 503 });
  edge = await startEdge(
    {
      ACCESS_LOG: "off",
      PROXY_API_KEYS: "ops:ops-key",
      FHIR_SOURCE_EHR: "fhir+http://127.0.0.1:9/fhir",
      FHIR_CHANNELS: JSON.stringify({
        signed: {
          source: "ehr",
          topic: "http://hl7.org/SubscriptionTopic/admission",
          secret: "env:CHANNEL_SECRET",
          targets: [
            target("whsec", { signingSecrets: ["env:NEW_KEY"] }),
            target("plain", { signingSecret: "env:OLD_KEY" }),
            target("rot-old", { signingSecrets: ["env:NEW_KEY", "env:OLD_KEY"] }),
            target("rot-new", { signingSecrets: ["env:NEW_KEY", "env:OLD_KEY"] }),
            target("retry", { signingSecrets: ["env:NEW_KEY"] }),
          ],
        },
      }),
    },
    { CHANNEL_SECRET: SECRET, NEW_KEY, OLD_KEY },
  );
  for (const events of [[1], [2, 3], [4]]) {
    const res = await edge.fetch("/webhooks/signed", {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json", "X-Api-Key": SECRET },
      body: JSON.stringify(notification("R5", "event-notification", { events })),
    });
    expect(res.status).toBe(200);
  }
});

afterAll(async () => {
  await edge?.close();
  await receiver?.close();
});

/** Waits (bounded) until the target has `n` successful deliveries. */
async function delivered(name: string, n: number, ms = 15_000): Promise<Delivery[]> {
  return eventually(() => receiver.deliveries(name), (all) => all.filter((d) => d.ok).length >= n, { timeoutMs: ms });
}

describe("every delivery verifies with the standardwebhooks library", () => {
  it.each([
    ["a whsec_<base64> secret", "whsec"],
    ["a plain-string secret", "plain"],
    ["rotation [new, old]: a receiver that still has the old secret", "rot-old"],
    ["rotation [new, old]: a receiver that has the new secret", "rot-new"],
  ])("%s", async (_, name) => {
    const all = await delivered(name, 3);
    expect(all.filter((d) => d.ok)).toHaveLength(3);
    expect(all.every((d) => d.verified === true)).toBe(true);
  });

  it("webhook-id is <channel>-<delivery sequence>, one per delivery", async () => {
    const all = (await delivered("whsec", 3)).filter((d) => d.ok);
    expect(all.map((d) => d.headers["webhook-id"])).toEqual(all.map((d) => `signed-${d.headers["x-fhir-edge-delivery"]}`));
    expect(new Set(all.map((d) => d.headers["webhook-id"])).size).toBe(3);
  });

  it("rotation puts two v1 signatures in webhook-signature", async () => {
    const [d] = await delivered("rot-old", 1);
    expect(d!.headers["webhook-signature"]!.split(" ").map((s) => s.split(",")[0])).toEqual(["v1", "v1"]);
  });

  it("X-Fhir-Edge-Signature is still sent, keyed by the first secret's text as written", async () => {
    const [d] = await delivered("rot-new", 1);
    expect(d!.headers["x-fhir-edge-signature"]).toBe(`sha256=${createHmac("sha256", NEW_KEY).update(d!.body).digest("hex")}`);
  });
});

describe("replay protection", () => {
  it("a delivery captured on the wire and replayed outside the library's tolerance (5 minutes) is rejected", async () => {
    const [d] = await delivered("whsec", 1);
    const sentAt = Number(d!.headers["webhook-timestamp"]) * 1000;
    expect(() => new Webhook(NEW_KEY).verify(d!.body, d!.headers)).not.toThrow();
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(sentAt + 6 * 60_000);
      expect(() => new Webhook(NEW_KEY).verify(d!.body, d!.headers)).toThrow("Message timestamp too old");
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("retries: the same delivery keeps its webhook-id", () => {
  it("a delivery refused twice (503) and then accepted carries one webhook-id on all three attempts, each signed for its own attempt", async () => {
    const all = await delivered("retry", 3);
    const first = all.filter((d) => d.headers["x-fhir-edge-delivery"] === all[0]!.headers["x-fhir-edge-delivery"]);
    expect(first.map((d) => d.status)).toEqual([503, 503, 200]);
    expect(new Set(first.map((d) => d.headers["webhook-id"])).size).toBe(1);
    expect(first.every((d) => d.verified === true)).toBe(true);
    const stamps = first.map((d) => Number(d.headers["webhook-timestamp"]));
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
  });
});
