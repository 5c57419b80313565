/**
 * A channel's Standard Webhooks secrets (`signingSecret`, `signingSecrets`) and its WebSocket
 * inbox `subscribers` (docs/relay.md#standard-webhooks-signatures, docs/inbox.md): validated
 * with every problem named by field, never by value.
 */
import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";

const WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const base = { PROXY_AUTH: "none", FHIR_SOURCE_EHR: "fhir://ehr.example/r4", HOOK_SECRET: "s3cret", NEW_KEY: WHSEC, OLD_KEY: "old-plain-secret" };
const channel = (extra: Record<string, unknown> = {}, target: Record<string, unknown> = {}) => ({
  source: "ehr",
  topic: "http://example.org/SubscriptionTopic/encounter-start",
  secret: "env:HOOK_SECRET",
  targets: [{ url: "https://app.example/hook", ...target }],
  ...extra,
});
const read = (spec: unknown) => readEdgeConfig({ ...base, FHIR_CHANNELS: { c: spec } });

describe("signingSecrets: rotation, newest first", () => {
  it("resolves env: values; the first keys X-Fhir-Edge-Signature, all sign Standard Webhooks", () => {
    const target = read(channel({}, { signingSecrets: ["env:NEW_KEY", "env:OLD_KEY"] })).channels.get("c")!.targets[0]!;
    expect(target.signingSecrets).toEqual([WHSEC, "old-plain-secret"]);
    expect(target.signingSecret).toBe(WHSEC);
  });

  it("signingSecret alone is a list of one", () => {
    const target = read(channel({}, { signingSecret: "env:OLD_KEY" })).channels.get("c")!.targets[0]!;
    expect(target).toMatchObject({ signingSecret: "old-plain-secret", signingSecrets: ["old-plain-secret"] });
  });

  it("a target without a secret has neither", () => {
    const target = read(channel()).channels.get("c")!.targets[0]!;
    expect(target.signingSecret).toBeUndefined();
    expect(target.signingSecrets).toBeUndefined();
  });

  it.each([
    ["an empty list", { signingSecrets: [] }, "targets[0].signingSecrets", "invalid-value"],
    ["not a list", { signingSecrets: "env:NEW_KEY" }, "targets[0].signingSecrets", "invalid-value"],
    ["an empty entry", { signingSecrets: ["env:NEW_KEY", ""] }, "targets[0].signingSecrets[1]", "invalid-value"],
    ["a number", { signingSecrets: [42] }, "targets[0].signingSecrets[0]", "invalid-value"],
    ["a missing binding", { signingSecrets: ["env:NOPE"] }, "targets[0].signingSecrets[0]", "missing-binding"],
    ["both fields", { signingSecret: "env:OLD_KEY", signingSecrets: ["env:NEW_KEY"] }, "targets[0].signingSecrets", "conflicting-fields"],
    ["whsec_ with no base64 after it", { signingSecrets: ["whsec_"] }, "targets[0].signingSecrets[0]", "invalid-signing-secret"],
    ["whsec_ with characters outside base64", { signingSecret: "whsec_not*base64!" }, "targets[0].signingSecret", "invalid-signing-secret"],
    ["whsec_ with base64 missing its padding", { signingSecret: "whsec_YWJjZA" }, "targets[0].signingSecret", "invalid-signing-secret"],
  ])("%s is an error naming the field", (_, target, field, code) => {
    const config = read(channel({}, target));
    expect(config.channels.has("c")).toBe(false);
    expect(config.brokenChannels.get("c")).toContainEqual(expect.objectContaining({ field, code }));
  });

  it("a bad whsec_ secret read from a binding is named by field, and its value appears nowhere", () => {
    const secret = "whsec_this-is-not-base64-but-secret";
    const config = readEdgeConfig({ ...base, BAD_KEY: secret, FHIR_CHANNELS: { c: channel({}, { signingSecrets: ["env:BAD_KEY"] }) } });
    const issues = config.brokenChannels.get("c")!;
    expect(issues).toContainEqual(expect.objectContaining({ field: "targets[0].signingSecrets[0]", code: "invalid-signing-secret" }));
    expect(JSON.stringify(issues)).not.toContain("this-is-not-base64");
  });
});

describe("subscribers: who may open the channel's WebSocket inbox", () => {
  it("a list of client names, none by default", () => {
    expect(read(channel({ subscribers: ["app", "laptop-dev"] })).channels.get("c")!.subscribers).toEqual(["app", "laptop-dev"]);
    expect(read(channel()).channels.get("c")!.subscribers).toEqual([]);
  });

  it("a channel with subscribers needs no webhook target", () => {
    const inboxOnly = read({ ...channel({ subscribers: ["app"] }), targets: undefined }).channels.get("c")!;
    expect(inboxOnly.targets).toEqual([]);
    expect(read(channel({ subscribers: ["app"], targets: [] })).channels.has("c")).toBe(true);
  });

  it.each([
    ["not a list", { subscribers: "app" }, "subscribers"],
    ["an empty name", { subscribers: ["app", " "] }, "subscribers[1]"],
    ["a number", { subscribers: [7] }, "subscribers[0]"],
  ])("%s is an error naming the field", (_, extra, field) => {
    expect(read(channel(extra)).brokenChannels.get("c")).toContainEqual(expect.objectContaining({ field, code: "invalid-value" }));
  });

  it("neither targets nor subscribers is still an error", () => {
    expect(read({ ...channel(), targets: undefined }).brokenChannels.get("c")).toContainEqual(expect.objectContaining({ field: "targets", code: "missing-field" }));
  });
});
