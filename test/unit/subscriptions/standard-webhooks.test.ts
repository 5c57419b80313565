/**
 * Standard Webhooks signing (docs/relay.md#standard-webhooks-signatures), checked with the
 * reference verifier, the `standardwebhooks` npm package: both ways to write a secret,
 * rotation, and its replay protection (the timestamp tolerance).
 */
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { signStandardWebhook, webhookId, addStandardWebhookHeaders, isValidSigningSecret } from "../../../src/subscriptions/standard-webhooks.ts";
import { signBody } from "../../../src/subscriptions/signature.ts";

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PLAIN = "target-signing-secret-9a2e";
const BODY = JSON.stringify({ resourceType: "Bundle", type: "subscription-notification", entry: [] });
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** The reference verifier for a secret as the edge reads it: whsec_ is base64, anything else its UTF-8 bytes. */
const verifier = (secret: string) => (secret.startsWith("whsec_") ? new Webhook(secret) : new Webhook(new TextEncoder().encode(secret), { format: "raw" }));
const plainHeaders = (h: object) => ({ ...h }) as Record<string, string>;

afterEach(() => {
  vi.useRealTimers();
});

describe("signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>", () => {
  it.each([
    ["a whsec_<base64> secret (its decoded bytes are the key)", WHSEC],
    ["any other string (its UTF-8 bytes are the key)", PLAIN],
    ["a non-ASCII string (UTF-8, not Latin-1)", "schlüssel-🔑"],
  ])("%s verifies with the standardwebhooks library", async (_, secret) => {
    const headers = await signStandardWebhook("enc-7", nowSeconds(), BODY, [secret]);
    expect(headers["webhook-id"]).toBe("enc-7");
    expect(headers["webhook-timestamp"]).toMatch(/^\d+$/);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verifier(secret).verify(BODY, plainHeaders(headers))).toEqual(JSON.parse(BODY));
  });

  it("a whsec_ secret is not keyed by its text: verifying as raw UTF-8 fails", async () => {
    const headers = await signStandardWebhook("enc-7", nowSeconds(), BODY, [WHSEC]);
    expect(() => new Webhook(new TextEncoder().encode(WHSEC), { format: "raw" }).verify(BODY, plainHeaders(headers))).toThrow(WebhookVerificationError);
  });

  it("an altered body, id or timestamp fails", async () => {
    const headers = plainHeaders(await signStandardWebhook("enc-7", nowSeconds(), BODY, [WHSEC]));
    const wh = new Webhook(WHSEC);
    expect(() => wh.verify(BODY.replace("[]", "[{}]"), headers)).toThrow(WebhookVerificationError);
    expect(() => wh.verify(BODY, { ...headers, "webhook-id": "enc-8" })).toThrow(WebhookVerificationError);
    expect(() => wh.verify(BODY, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 1) })).toThrow(WebhookVerificationError);
  });

  it("rotation: signingSecrets [new, old] signs with both, space-separated; a receiver with either verifies", async () => {
    const headers = plainHeaders(await signStandardWebhook("enc-7", nowSeconds(), BODY, [WHSEC, PLAIN]));
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(() => verifier(WHSEC).verify(BODY, headers)).not.toThrow();
    expect(() => verifier(PLAIN).verify(BODY, headers)).not.toThrow();
    expect(() => verifier("whsec_c29tZW9uZS1lbHNl").verify(BODY, headers)).toThrow(WebhookVerificationError);
  });
});

describe("replay protection: webhook-timestamp is the attempt's time", () => {
  it("a captured delivery replayed outside the library's tolerance (5 minutes) is rejected", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const sentAt = Date.UTC(2026, 11, 1, 12, 0, 0);
    vi.setSystemTime(sentAt);
    const headers = new Headers();
    await addStandardWebhookHeaders(headers, { channel: "enc", seq: 7, body: BODY }, [WHSEC], Date.now());
    const captured = Object.fromEntries(headers);
    expect(captured["webhook-timestamp"]).toBe(String(sentAt / 1000));
    vi.setSystemTime(sentAt + 60_000);
    expect(() => new Webhook(WHSEC).verify(BODY, captured)).not.toThrow();
    vi.setSystemTime(sentAt + 6 * 60_000);
    expect(() => new Webhook(WHSEC).verify(BODY, captured)).toThrow("Message timestamp too old");
  });

  it("a retry of the same delivery keeps the webhook-id and gets a new timestamp and signature", async () => {
    const first = new Headers();
    const retry = new Headers();
    await addStandardWebhookHeaders(first, { channel: "enc", seq: 7, body: BODY }, [WHSEC], Date.UTC(2026, 11, 1, 12, 0, 0));
    await addStandardWebhookHeaders(retry, { channel: "enc", seq: 7, body: BODY }, [WHSEC], Date.UTC(2026, 11, 1, 12, 0, 30));
    expect(retry.get("webhook-id")).toBe(first.get("webhook-id"));
    expect(retry.get("webhook-id")).toBe(webhookId("enc", 7));
    expect(Number(retry.get("webhook-timestamp")) - Number(first.get("webhook-timestamp"))).toBe(30);
    expect(retry.get("webhook-signature")).not.toBe(first.get("webhook-signature"));
  });

  it("no secret, no headers", async () => {
    const headers = new Headers();
    await addStandardWebhookHeaders(headers, { channel: "enc", seq: 7, body: BODY }, undefined, Date.now());
    expect([...headers.keys()]).toEqual([]);
  });
});

describe("X-Fhir-Edge-Signature stays as it was", () => {
  it("a whsec_ secret keys it by its text as written (UTF-8), not its decoded bytes", async () => {
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(WHSEC), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(BODY)));
    expect(await signBody(BODY, WHSEC)).toBe(`sha256=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`);
  });
});

describe("which secrets can key a signature", () => {
  it.each([
    [WHSEC, true],
    ["plain words", true],
    ["whsec_YWJjZA==", true],
    ["whsec_", false],
    ["whsec_YWJjZA", false],
    ["whsec_a b=", false],
    ["", false],
  ])("%j: %s", (secret, valid) => {
    expect(isValidSigningSecret(secret)).toBe(valid);
  });
});
