import { readRateLimits, type RateLimitSettings } from "../protection/rate-limit-config.ts";
import { resolveChannel, type ChannelConfig } from "./channel.ts";
import { parseConnectionString } from "./connection-string.ts";
import { resolveSource, type SourceInput } from "./source.ts";
import { RESERVED_NAMES, SOURCE_NAME, type ConfigIssue, type SourceConfig } from "./types.ts";

export type InboundAuthConfig =
  | { mode: "api-key"; keys: ReadonlyArray<{ client: string; key: string }> }
  | { mode: "jwt"; jwksUrl: string; issuer: string; audience: string }
  | { mode: "none" };

/** The whole edge configuration, as read from the Worker's bindings. */
export interface EdgeConfig {
  sources: ReadonlyMap<string, SourceConfig>;
  /** Sources declared but unusable, with what is wrong: requests to them answer 500. */
  brokenSources: ReadonlyMap<string, ConfigIssue[]>;
  /** Subscription channels from `FHIR_CHANNELS`. */
  channels: ReadonlyMap<string, ChannelConfig>;
  brokenChannels: ReadonlyMap<string, ConfigIssue[]>;
  /** Who may call the edge; undefined when that setting itself is broken (every request then fails closed). */
  inbound: InboundAuthConfig | undefined;
  adminClients: ReadonlySet<string>;
  /** The edge's public base without a trailing slash, when `PUBLIC_URL` is set. */
  publicUrl: string | undefined;
  allowInsecureHttp: boolean;
  aggregate: AggregateSettings;
  /** `ACCESS_LOG`: which requests get an access-log line. */
  accessLog: AccessLogMode;
  /** `PROXY_RATE_LIMITS` and companions: which rate-limit binding counts which requests. */
  rateLimits: RateLimitSettings;
  /** Every problem found, edge-wide ones and per-source ones. */
  issues: ConfigIssue[];
}

/** `GET /aggregate/...` and `POST /aggregate`. */
export interface AggregateSettings {
  /** `AGGREGATE_TIMEOUT` in milliseconds: the whole fan-out, retries included. */
  timeoutMs: number;
  /** `AGGREGATE_CURSOR_SECRET`, the HMAC key of paging cursors; undefined: a random key per isolate. */
  cursorSecret: string | undefined;
}

const DEFAULT_AGGREGATE_TIMEOUT_SECONDS = 10;

/** `all`: every request; `errors`: answers of 400 and above, and 2xx ones with an incident (a retry, a failed aggregate source or batch entry); `off`: none. */
export type AccessLogMode = "all" | "errors" | "off";
const ACCESS_LOG_MODES: ReadonlySet<string> = new Set<AccessLogMode>(["all", "errors", "off"]);

const SOURCE_VAR_PREFIX = "FHIR_SOURCE_";

/**
 * Reads every source and edge setting from the bindings. Pure: no fetch, no
 * KV. One bad source never hides the others: its issues are collected and the
 * rest are returned ready to use.
 * @see docs/configuration.md
 */
export function readEdgeConfig(env: Readonly<Record<string, unknown>>): EdgeConfig {
  const issues: ConfigIssue[] = [];
  const allowInsecureHttp = flag(env.ALLOW_INSECURE_HTTP);
  const ctx = { env, allowInsecureHttp };

  const declared = new Map<string, SourceInput | ConfigIssue[]>();
  const declare = (name: string, input: SourceInput | ConfigIssue[], where: string) => {
    if (!SOURCE_NAME.test(name) || RESERVED_NAMES.has(name)) {
      issues.push({
        subject: name,
        code: "invalid-source-name",
        message: RESERVED_NAMES.has(name)
          ? `Source ${name} (${where}): ${name} is a route of the edge itself; pick another name`
          : `Source ${name} (${where}): a source name is lower-case letters, digits and '-', at most 63, starting with a letter or digit`,
      });
      return;
    }
    if (declared.has(name)) {
      declared.set(name, [{ subject: name, code: "duplicate-source", message: `Source ${name} is declared twice (${where} and elsewhere)` }]);
      return;
    }
    declared.set(name, input);
  };

  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith(SOURCE_VAR_PREFIX) || key.length === SOURCE_VAR_PREFIX.length) continue;
    const name = key.slice(SOURCE_VAR_PREFIX.length).toLowerCase().replaceAll("_", "-");
    if (typeof value !== "string") {
      declare(name, [{ subject: name, field: "url", code: "invalid-url", message: `Source ${name}: ${key} must be a connection string` }], key);
      continue;
    }
    const parsed = parseConnectionString(name, value);
    declare(name, parsed.ok ? parsed.value : parsed.error, key);
  }

  const json = readJsonVar(env.FHIR_SOURCES, "FHIR_SOURCES", issues);
  for (const [name, spec] of Object.entries(json)) {
    if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
      declare(name, [{ subject: name, code: "invalid-value", message: `Source ${name}: FHIR_SOURCES.${name} must be an object with a url` }], "FHIR_SOURCES");
      continue;
    }
    const { url, headers, ...rest } = spec as Record<string, unknown>;
    const headerIssues: ConfigIssue[] = [];
    const headerList: Array<[string, string]> = [];
    if (headers !== undefined) {
      if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {
        headerIssues.push({ subject: name, field: "headers", code: "invalid-value", message: `Source ${name}: headers must be an object of names to values` });
      } else {
        for (const [h, v] of Object.entries(headers)) {
          if (typeof v === "string") headerList.push([h, v]);
          else headerIssues.push({ subject: name, field: `headers.${h}`, code: "invalid-value", message: `Source ${name}: header ${h} must be a string` });
        }
      }
    }
    if (url !== undefined && typeof url !== "string") {
      headerIssues.push({ subject: name, field: "url", code: "invalid-url", message: `Source ${name}: url must be a string` });
    }
    declare(
      name,
      headerIssues.length > 0 ? headerIssues : { url: url as string | undefined, fields: new Map(Object.entries(rest)), headers: headerList },
      "FHIR_SOURCES",
    );
  }

  const sources = new Map<string, SourceConfig>();
  const brokenSources = new Map<string, ConfigIssue[]>();
  for (const [name, input] of declared) {
    const resolved = Array.isArray(input) ? { ok: false as const, error: input } : resolveSource(name, input, ctx);
    if (resolved.ok) sources.set(name, resolved.value);
    else {
      brokenSources.set(name, resolved.error);
      issues.push(...resolved.error);
    }
  }

  const channels = new Map<string, ChannelConfig>();
  const brokenChannels = new Map<string, ConfigIssue[]>();
  const declaredSources = new Set(declared.keys());
  for (const [name, spec] of Object.entries(readJsonVar(env.FHIR_CHANNELS, "FHIR_CHANNELS", issues))) {
    const resolved = resolveChannel(name, spec, { env, allowInsecureHttp, sources: declaredSources });
    if (resolved.ok) channels.set(name, resolved.value);
    else {
      brokenChannels.set(name, resolved.error);
      issues.push(...resolved.error);
    }
  }

  const inbound = readInboundAuth(env, issues);
  const adminClients = new Set(list(env.PROXY_ADMIN_CLIENTS));
  let publicUrl: string | undefined;
  if (typeof env.PUBLIC_URL === "string" && env.PUBLIC_URL !== "") {
    try {
      const u = new URL(env.PUBLIC_URL);
      if (u.search || u.hash || (u.protocol !== "https:" && u.protocol !== "http:")) throw new Error("shape");
      publicUrl = u.href.replace(/\/+$/, "");
    } catch {
      issues.push({ subject: "PUBLIC_URL", code: "invalid-url", message: "PUBLIC_URL must be an absolute http(s) URL without query" });
    }
  }
  const aggregate = readAggregateSettings(env, issues);
  const accessLog = readAccessLog(env, issues);
  const rateLimits = readRateLimits(env, issues);
  return { sources, brokenSources, channels, brokenChannels, inbound, adminClients, publicUrl, allowInsecureHttp, aggregate, accessLog, rateLimits, issues };
}

/** A bad value is reported and logs everything: losing logs silently is the worse failure. */
function readAccessLog(env: Readonly<Record<string, unknown>>, issues: ConfigIssue[]): AccessLogMode {
  const raw = env.ACCESS_LOG;
  if (raw === undefined || raw === "") return "all";
  if (typeof raw === "string" && ACCESS_LOG_MODES.has(raw.trim().toLowerCase())) return raw.trim().toLowerCase() as AccessLogMode;
  issues.push({ subject: "ACCESS_LOG", code: "invalid-value", message: "ACCESS_LOG must be all, errors or off; logging every request meanwhile" });
  return "all";
}

function readAggregateSettings(env: Readonly<Record<string, unknown>>, issues: ConfigIssue[]): AggregateSettings {
  let seconds = DEFAULT_AGGREGATE_TIMEOUT_SECONDS;
  const raw = env.AGGREGATE_TIMEOUT;
  if (raw !== undefined && raw !== "") {
    const n = typeof raw === "number" ? raw : typeof raw === "string" ? Number(raw) : NaN;
    if (Number.isFinite(n) && n > 0 && n <= 300) seconds = n;
    else issues.push({ subject: "AGGREGATE_TIMEOUT", code: "invalid-value", message: "AGGREGATE_TIMEOUT must be a number of seconds above 0, at most 300" });
  }
  const secret = env.AGGREGATE_CURSOR_SECRET;
  return { timeoutMs: Math.round(seconds * 1000), cursorSecret: typeof secret === "string" && secret !== "" ? secret : undefined };
}

function readInboundAuth(env: Readonly<Record<string, unknown>>, issues: ConfigIssue[]): InboundAuthConfig | undefined {
  const mode = typeof env.PROXY_AUTH === "string" && env.PROXY_AUTH !== "" ? env.PROXY_AUTH : "api-key";
  switch (mode) {
    case "none":
      return { mode: "none" };
    case "api-key": {
      const keys: Array<{ client: string; key: string }> = [];
      const seen = new Set<string>();
      for (const entry of list(env.PROXY_API_KEYS)) {
        const colon = entry.indexOf(":");
        const client = colon > 0 ? entry.slice(0, colon).trim() : "";
        const key = colon > 0 ? entry.slice(colon + 1).trim() : "";
        if (client === "" || key === "") {
          issues.push({ subject: "PROXY_API_KEYS", code: "invalid-value", message: "PROXY_API_KEYS entries are client-name:key" });
        } else if (seen.has(client)) {
          issues.push({ subject: "PROXY_API_KEYS", code: "duplicate-client", message: `PROXY_API_KEYS names client ${client} twice` });
        } else {
          seen.add(client);
          keys.push({ client, key });
        }
      }
      if (keys.length === 0) {
        issues.push({ subject: "PROXY_API_KEYS", code: "no-api-keys", message: "PROXY_AUTH is api-key but PROXY_API_KEYS holds no key: every request is refused" });
      }
      return { mode: "api-key", keys };
    }
    case "jwt": {
      const missing = ["PROXY_JWT_JWKS_URL", "PROXY_JWT_ISSUER", "PROXY_JWT_AUDIENCE"].filter((k) => typeof env[k] !== "string" || env[k] === "");
      for (const k of missing) issues.push({ subject: k, code: "missing-field", message: `PROXY_AUTH is jwt but ${k} is not set` });
      if (missing.length > 0) return undefined;
      return {
        mode: "jwt",
        jwksUrl: env.PROXY_JWT_JWKS_URL as string,
        issuer: env.PROXY_JWT_ISSUER as string,
        audience: env.PROXY_JWT_AUDIENCE as string,
      };
    }
    default:
      issues.push({ subject: "PROXY_AUTH", code: "invalid-value", message: "PROXY_AUTH must be api-key, jwt or none" });
      return undefined;
  }
}

/** Accepts an object (wrangler `[vars.X]` tables) or that object as a JSON string (secrets, `.dev.vars`). */
function readJsonVar(value: unknown, variable: string, issues: ConfigIssue[]): Record<string, unknown> {
  if (value === undefined || value === null || value === "") return {};
  let parsed: unknown = value;
  if (typeof value === "string") {
    try {
      parsed = JSON.parse(value);
    } catch {
      issues.push({ subject: variable, code: "invalid-json", message: `${variable} is not valid JSON` });
      return {};
    }
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    issues.push({ subject: variable, code: "invalid-value", message: `${variable} must be an object keyed by name` });
    return {};
  }
  return parsed as Record<string, unknown>;
}

function list(value: unknown): string[] {
  if (typeof value !== "string") return [];
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function flag(value: unknown): boolean {
  return value === true || value === "true";
}

const cache = new WeakMap<object, EdgeConfig>();

/** {@link readEdgeConfig}, once per isolate and bindings object: never on the hot path. */
export function edgeConfig(env: object): EdgeConfig {
  let config = cache.get(env);
  if (!config) {
    config = readEdgeConfig(env as Record<string, unknown>);
    cache.set(env, config);
  }
  return config;
}
