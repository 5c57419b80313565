import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";

const base = { PROXY_AUTH: "none", FHIR_SOURCE_EHR: "fhir://ehr.example/r4", HOOK_SECRET: "s3cret", SIGN: "k" };
const channel = (extra: Record<string, unknown> = {}) => ({
  source: "ehr",
  topic: "http://example.org/SubscriptionTopic/encounter-start",
  secret: "env:HOOK_SECRET",
  targets: [{ url: "https://app.example/hook", headers: { "X-Api-Key": "abc" }, signingSecret: "env:SIGN" }],
  ...extra,
});

describe("channels: FHIR_CHANNELS", () => {
  it("reads a channel with its defaults", () => {
    const config = readEdgeConfig({ ...base, FHIR_CHANNELS: { enc: channel() } });
    expect(config.channels.get("enc")).toEqual({
      name: "enc",
      source: "ehr",
      topic: "http://example.org/SubscriptionTopic/encounter-start",
      filterBy: [],
      payload: "id-only",
      secret: "s3cret",
      sequencing: "strict",
      fhirVersion: "R4",
      gapGraceMs: 5000,
      retention: { maxEvents: 10_000, maxAgeMs: 7 * 24 * 3600 * 1000 },
      replayWindowMs: 24 * 3600 * 1000,
      targets: [{ url: "https://app.example/hook", headers: [["X-Api-Key", "abc"]], signingSecret: "k", signingSecrets: ["k"], maxBackoffMs: 30_000 }],
      subscribers: [],
    });
  });

  it("a JSON string works the same", () => {
    expect(readEdgeConfig({ ...base, FHIR_CHANNELS: JSON.stringify({ enc: channel({ payload: "full-resource", heartbeatPeriod: 20 }) }) }).channels.get("enc")).toMatchObject({
      payload: "full-resource",
      heartbeatPeriod: 20,
    });
  });

  it.each([
    ["an unknown source", { source: "nope" }, "source", "unknown-source"],
    ["no secret", { secret: undefined }, "secret", "missing-field"],
    ["a plain-http target", { targets: [{ url: "http://app.example/hook" }] }, "targets[0].url", "insecure-url"],
    ["no targets", { targets: [] }, "targets", "missing-field"],
    ["a bad payload", { payload: "everything" }, "payload", "invalid-value"],
    ["a bad sequencing", { sequencing: "sometimes" }, "sequencing", "invalid-value"],
    ["an unknown field", { heartbeat: 20 }, "heartbeat", "unknown-field"],
  ])("%s is an error naming the field; other channels keep working", (_, extra, field, code) => {
    const config = readEdgeConfig({ ...base, FHIR_CHANNELS: { bad: channel(extra), good: channel() } });
    expect(config.channels.has("good")).toBe(true);
    expect(config.brokenChannels.get("bad")).toContainEqual(expect.objectContaining({ subject: "bad", field, code }));
  });

  it("http targets with ALLOW_INSECURE_HTTP", () => {
    expect(readEdgeConfig({ ...base, ALLOW_INSECURE_HTTP: "true", FHIR_CHANNELS: { c: channel({ targets: [{ url: "http://127.0.0.1:9/h" }] }) } }).channels.has("c")).toBe(true);
  });
});

describe("channels: a target's headers may not set what the edge sets on each delivery", () => {
  const withHeader = (name: string) => channel({ targets: [{ url: "https://app.example/hook", headers: { [name]: "x" } }] });
  it.each([
    "Content-Type",
    "content-length",
    "Host",
    "Connection",
    "Keep-Alive",
    "Transfer-Encoding",
    "TE",
    "Trailer",
    "Upgrade",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "webhook-id",
    "Webhook-Timestamp",
    "webhook-signature",
    "X-Fhir-Edge-Delivery",
    "x-fhir-edge-anything",
  ])("%s is a reserved-header error naming the channel and the field; other channels keep working", (name) => {
    const config = readEdgeConfig({ ...base, FHIR_CHANNELS: { hooks: withHeader(name), good: channel() } });
    expect(config.channels.has("hooks")).toBe(false);
    expect(config.channels.has("good")).toBe(true);
    const issues = config.brokenChannels.get("hooks") ?? [];
    expect(issues).toEqual([expect.objectContaining({ subject: "hooks", field: `targets[0].headers.${name}`, code: "reserved-header" })]);
    expect(issues[0]!.message).toMatch(/^Channel hooks: /);
    expect(issues[0]!.message).toContain(name);
  });

  it("other headers, including Authorization and X-Api-Key for the target, are kept", () => {
    const config = readEdgeConfig({ ...base, FHIR_CHANNELS: { hooks: channel({ targets: [{ url: "https://app.example/hook", headers: { Authorization: "Bearer t", "X-Fhir-Edgy": "y" } }] }) } });
    expect(config.channels.get("hooks")?.targets[0]?.headers).toEqual([
      ["Authorization", "Bearer t"],
      ["X-Fhir-Edgy", "y"],
    ]);
  });
});
