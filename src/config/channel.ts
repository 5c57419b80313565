import { err, ok, type Result } from "../result.ts";
import { isValidSigningSecret, WHSEC_PREFIX } from "../subscriptions/standard-webhooks.ts";
import { HOP_BY_HOP } from "../upstream/hop-by-hop.ts";
import { resolveEnvValue } from "./env-value.ts";
import { HEADER_NAME } from "./source.ts";
import { SOURCE_NAME, type ConfigIssue } from "./types.ts";

export interface FilterBy {
  resourceType?: string;
  filterParameter: string;
  comparator?: string;
  modifier?: string;
  value: string;
}

export interface TargetConfig {
  url: string;
  headers: ReadonlyArray<readonly [string, string]>;
  /** The key of `X-Fhir-Edge-Signature` (as UTF-8): `signingSecret`, or the first of `signingSecrets`. */
  signingSecret?: string;
  /** Every Standard Webhooks secret, newest first (`signingSecrets`, or the one `signingSecret`); absent without one. */
  signingSecrets?: readonly string[];
  /** Milliseconds; the cap of the retry backoff for this target. */
  maxBackoffMs: number;
}

/** One subscription at one source, relayed to its targets. */
export interface ChannelConfig {
  name: string;
  source: string;
  topic: string;
  filterBy: FilterBy[];
  payload: "empty" | "id-only" | "full-resource";
  /** Seconds, as the Subscription asks the server; liveness checks after twice this. */
  heartbeatPeriod?: number;
  timeout?: number;
  secret: string;
  sequencing: "strict" | "per-bundle" | "none";
  /** The Subscription form `register` creates: R5, or the R4B / R4 backport profile. */
  fhirVersion: "R5" | "R4B" | "R4";
  /** Milliseconds an out-of-order event may wait for the ones before it before `$events` is asked. */
  gapGraceMs: number;
  retention: { maxEvents: number; maxAgeMs: number };
  /** Milliseconds a notification every target has stays for replay (`GET /admin/channels/<channel>/events`), within the retention limits. */
  replayWindowMs: number;
  targets: TargetConfig[];
  /** Client names (API key names, JWT `sub`s) allowed on the channel's WebSocket inbox besides admin clients. */
  subscribers: readonly string[];
}

const CHANNEL_DEFAULTS = {
  payload: "id-only",
  sequencing: "strict",
  fhirVersion: "R4",
  gapGracePeriod: 5,
  maxBackoff: 30,
  retentionEvents: 10_000,
  retentionSeconds: 7 * 24 * 3600,
  replayWindowSeconds: 24 * 3600,
} as const;

const KNOWN = new Set([
  "source",
  "topic",
  "filterBy",
  "payload",
  "heartbeatPeriod",
  "timeout",
  "secret",
  "targets",
  "sequencing",
  "fhirVersion",
  "gapGracePeriod",
  "retentionEvents",
  "retentionSeconds",
  "replayWindowSeconds",
  "subscribers",
]);
const TARGET_KNOWN = new Set(["url", "headers", "signingSecret", "signingSecrets", "maxBackoff"]);
/**
 * Headers of a delivery the edge sets itself (lower case): the body's type and
 * length, the connection's own headers, the Standard Webhooks signature
 * headers, and every `X-Fhir-Edge-*` header; a target's `headers` may not set them.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 * @see https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
const TARGET_RESERVED: ReadonlySet<string> = new Set([...HOP_BY_HOP, "content-type", "content-length", "host", "webhook-id", "webhook-timestamp", "webhook-signature"]);
const reservedForTarget = (name: string) => TARGET_RESERVED.has(name.toLowerCase()) || name.toLowerCase().startsWith("x-fhir-edge-");

/**
 * Validates one channel of `FHIR_CHANNELS`, resolving `env:NAME` secrets.
 * Collects every problem; never puts a value in a message.
 * @see docs/configuration.md#channels-fhir_channels
 */
export function resolveChannel(
  name: string,
  spec: unknown,
  ctx: { env: Readonly<Record<string, unknown>>; allowInsecureHttp: boolean; sources: ReadonlySet<string> },
): Result<ChannelConfig, ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const issue = (field: string | undefined, code: string, message: string) =>
    issues.push({ subject: name, ...(field ? { field } : {}), code, message: `Channel ${name}: ${message}` });
  if (!SOURCE_NAME.test(name)) issue(undefined, "invalid-channel-name", "a channel name is lower-case letters, digits and '-', at most 63");
  const o = spec !== null && typeof spec === "object" && !Array.isArray(spec) ? (spec as Record<string, unknown>) : undefined;
  if (!o) {
    issue(undefined, "invalid-value", "a channel must be an object");
    return err(issues);
  }
  for (const key of Object.keys(o)) if (!KNOWN.has(key)) issue(key, "unknown-field", `unknown field ${key}`);

  const secretOf = (field: string, raw: unknown): string | undefined => {
    if (typeof raw !== "string" || raw === "") return undefined;
    return resolveEnvValue(raw, ctx.env, (i) => issue(field, i.code, i.message), field);
  };
  const seconds = (field: string, fallback: number | undefined, min: number): number | undefined => {
    const raw = o[field];
    if (raw === undefined) return fallback;
    const n = typeof raw === "number" ? raw : typeof raw === "string" ? Number(raw) : NaN;
    if (!Number.isFinite(n) || n < min) {
      issue(field, "invalid-value", `${field} must be a number of seconds, at least ${min}`);
      return fallback;
    }
    return n;
  };
  const oneOf = <T extends string>(field: string, allowed: readonly T[], fallback: T): T => {
    const raw = o[field];
    if (raw === undefined) return fallback;
    if (typeof raw === "string" && (allowed as readonly string[]).includes(raw)) return raw as T;
    issue(field, "invalid-value", `${field} must be one of ${allowed.join(", ")}`);
    return fallback;
  };
  const httpUrl = (field: string, raw: unknown): string | undefined => {
    try {
      const u = new URL(String(raw));
      if (u.protocol === "https:" || (u.protocol === "http:" && ctx.allowInsecureHttp)) return u.href;
      issue(field, u.protocol === "http:" ? "insecure-url" : "invalid-url", u.protocol === "http:" ? 'plain-http targets need ALLOW_INSECURE_HTTP = "true"' : `${field} must be an https URL`);
    } catch {
      issue(field, "invalid-url", `${field} must be an absolute https URL`);
    }
    return undefined;
  };

  const source = typeof o.source === "string" ? o.source : "";
  if (source === "") issue("source", "missing-field", "source is required");
  else if (!ctx.sources.has(source)) issue("source", "unknown-source", `source ${source} is not a configured source`);
  const topic = typeof o.topic === "string" ? o.topic : "";
  if (topic === "") issue("topic", "missing-field", "topic (the SubscriptionTopic canonical URL) is required");
  const secret = secretOf("secret", o.secret);
  if (o.secret === undefined || o.secret === "") issue("secret", "missing-field", "secret is required: the source authenticates its notifications with it");

  const filterBy: FilterBy[] = [];
  if (o.filterBy !== undefined) {
    if (!Array.isArray(o.filterBy)) issue("filterBy", "invalid-value", "filterBy must be a list");
    else
      for (const [i, f] of o.filterBy.entries()) {
        const x = (f ?? {}) as Record<string, unknown>;
        if (typeof x.filterParameter !== "string" || typeof x.value !== "string") {
          issue(`filterBy[${i}]`, "invalid-value", "each filterBy needs filterParameter and value (strings)");
          continue;
        }
        filterBy.push({
          filterParameter: x.filterParameter,
          value: x.value,
          ...(typeof x.resourceType === "string" ? { resourceType: x.resourceType } : {}),
          ...(typeof x.comparator === "string" ? { comparator: x.comparator } : {}),
          ...(typeof x.modifier === "string" ? { modifier: x.modifier } : {}),
        });
      }
  }

  const subscribers: string[] = [];
  if (o.subscribers !== undefined) {
    if (!Array.isArray(o.subscribers)) issue("subscribers", "invalid-value", "subscribers must be a list of client names");
    else
      for (const [i, s] of o.subscribers.entries()) {
        if (typeof s === "string" && s.trim() !== "") subscribers.push(s.trim());
        else issue(`subscribers[${i}]`, "invalid-value", "each subscriber is a client name (an API key's name or a JWT sub)");
      }
  }

  // A signing secret as written, resolved: env: read, whsec_ checked. Reports the field, never the value.
  const signingSecretOf = (field: string, raw: unknown): string | undefined => {
    if (typeof raw !== "string" || raw === "") {
      issue(field, "invalid-value", `${field} must be a non-empty string`);
      return undefined;
    }
    const value = secretOf(field, raw);
    if (value !== undefined && !isValidSigningSecret(value)) {
      issue(field, "invalid-signing-secret", `${field} starts with ${WHSEC_PREFIX} but what follows is not standard base64 (A-Z a-z 0-9 + /, padded with =)`);
      return undefined;
    }
    return value;
  };

  const targets: TargetConfig[] = [];
  // A channel read only through its WebSocket inbox needs no webhook target.
  if (o.targets === undefined && subscribers.length > 0) {
    // nothing to deliver by webhook
  } else if (!Array.isArray(o.targets) || (o.targets.length === 0 && subscribers.length === 0)) {
    issue("targets", "missing-field", "targets must list at least one webhook target (or subscribers at least one client)");
  } else
    for (const [i, t] of o.targets.entries()) {
      const field = `targets[${i}]`;
      const x = t !== null && typeof t === "object" ? (t as Record<string, unknown>) : {};
      for (const key of Object.keys(x)) if (!TARGET_KNOWN.has(key)) issue(`${field}.${key}`, "unknown-field", `unknown field ${field}.${key}`);
      const url = httpUrl(`${field}.url`, x.url);
      const headers: Array<[string, string]> = [];
      for (const [h, v] of Object.entries((x.headers ?? {}) as Record<string, unknown>)) {
        if (HEADER_NAME.test(h) && reservedForTarget(h)) {
          issue(`${field}.headers.${h}`, "reserved-header", `${field}.headers may not set ${h}: the edge sets it on every delivery`);
          continue;
        }
        const value = secretOf(`${field}.headers.${h}`, v);
        if (value === undefined || /[\r\n\0]/.test(value) || !HEADER_NAME.test(h)) {
          if (!issues.some((e) => e.field === `${field}.headers.${h}`)) issue(`${field}.headers.${h}`, "invalid-header", `header ${h} is not a valid header`);
        } else headers.push([h, value]);
      }
      const signingSecrets: string[] = [];
      if (x.signingSecret !== undefined && x.signingSecrets !== undefined) {
        issue(`${field}.signingSecrets`, "conflicting-fields", `${field} has both signingSecret and signingSecrets; list every secret in signingSecrets`);
      } else if (x.signingSecrets !== undefined) {
        if (!Array.isArray(x.signingSecrets) || x.signingSecrets.length === 0) issue(`${field}.signingSecrets`, "invalid-value", `${field}.signingSecrets must be a non-empty list of secrets, newest first`);
        else
          for (const [j, raw] of x.signingSecrets.entries()) {
            const value = signingSecretOf(`${field}.signingSecrets[${j}]`, raw);
            if (value !== undefined) signingSecrets.push(value);
          }
      } else if (x.signingSecret !== undefined && x.signingSecret !== "") {
        const value = signingSecretOf(`${field}.signingSecret`, x.signingSecret);
        if (value !== undefined) signingSecrets.push(value);
      }
      const maxBackoff = x.maxBackoff === undefined ? CHANNEL_DEFAULTS.maxBackoff : Number(x.maxBackoff);
      if (!Number.isFinite(maxBackoff) || maxBackoff < 1) issue(`${field}.maxBackoff`, "invalid-value", "maxBackoff must be at least 1 second");
      if (url && targets.some((other) => other.url === url)) issue(`${field}.url`, "duplicate-target", "two targets have the same url");
      const signing = signingSecrets.length > 0 ? { signingSecret: signingSecrets[0]!, signingSecrets } : {};
      if (url) targets.push({ url, headers, ...signing, maxBackoffMs: Math.round(maxBackoff * 1000) });
    }

  const heartbeatPeriod = seconds("heartbeatPeriod", undefined, 1);
  const timeout = seconds("timeout", undefined, 1);
  const config: ChannelConfig = {
    name,
    source,
    topic,
    filterBy,
    payload: oneOf("payload", ["empty", "id-only", "full-resource"] as const, CHANNEL_DEFAULTS.payload),
    ...(heartbeatPeriod !== undefined ? { heartbeatPeriod } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    secret: secret ?? "",
    sequencing: oneOf("sequencing", ["strict", "per-bundle", "none"] as const, CHANNEL_DEFAULTS.sequencing),
    fhirVersion: oneOf("fhirVersion", ["R5", "R4B", "R4"] as const, CHANNEL_DEFAULTS.fhirVersion),
    gapGraceMs: Math.round((seconds("gapGracePeriod", CHANNEL_DEFAULTS.gapGracePeriod, 0) ?? 0) * 1000),
    retention: {
      maxEvents: seconds("retentionEvents", CHANNEL_DEFAULTS.retentionEvents, 1) ?? CHANNEL_DEFAULTS.retentionEvents,
      maxAgeMs: Math.round((seconds("retentionSeconds", CHANNEL_DEFAULTS.retentionSeconds, 60) ?? CHANNEL_DEFAULTS.retentionSeconds) * 1000),
    },
    replayWindowMs: Math.round((seconds("replayWindowSeconds", CHANNEL_DEFAULTS.replayWindowSeconds, 0) ?? CHANNEL_DEFAULTS.replayWindowSeconds) * 1000),
    targets,
    subscribers,
  };
  return issues.length > 0 ? err(issues) : ok(config);
}
