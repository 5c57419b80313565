import type { ConfigIssue } from "../config/types.ts";

/** `PROXY_RATE_LIMITS` and its companions, as read from the bindings (docs/protection.md). */
export interface RateLimitSettings {
  /** Client name to rate-limit binding name; only bindings that exist. */
  clients: ReadonlyMap<string, string>;
  /** The `*` entry: every client not named. */
  otherClients: string | undefined;
  /** `PROXY_RATE_LIMIT_ADMIN`: the binding of `/status` and `/admin/...`, per admin client. */
  admin: string | undefined;
  /** `PROXY_RATE_LIMIT_WEBHOOKS`: the binding of `POST /webhooks/<channel>`, per channel and caller address. */
  webhooks: string | undefined;
  /** `PROXY_RATE_LIMIT_KEY`: `client` (one count per client) or `client-and-source` (one per client and source). */
  keyBy: "client" | "client-and-source";
}

const BINDING_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether a binding is a Workers Rate Limiting binding (it has `limit()`). */
export function isRateLimitBinding(value: unknown): value is RateLimit {
  return value !== null && typeof value === "object" && typeof (value as { limit?: unknown }).limit === "function";
}

/**
 * Reads `PROXY_RATE_LIMITS` (`<client>:<BINDING>` entries, comma-separated,
 * `*` for every other client), `PROXY_RATE_LIMIT_ADMIN`,
 * `PROXY_RATE_LIMIT_WEBHOOKS` and `PROXY_RATE_LIMIT_KEY`. Pure. A malformed
 * entry or one naming no rate-limit binding is reported and left out: its
 * client falls under `*`, or is not limited when there is none.
 * @see https://developers.cloudflare.com/workers/runtime-apis/bindings/rate-limit/
 */
export function readRateLimits(env: Readonly<Record<string, unknown>>, issues: ConfigIssue[]): RateLimitSettings {
  const clients = new Map<string, string>();
  let otherClients: string | undefined;
  const binding = (variable: string, name: string): string | undefined => {
    if (!BINDING_NAME.test(name)) {
      issues.push({ subject: variable, code: "invalid-value", message: `${variable}: ${JSON.stringify(name)} is not a binding name` });
      return undefined;
    }
    if (!isRateLimitBinding(env[name])) {
      issues.push({ subject: variable, code: "unknown-binding", message: `${variable} names ${name}, which is not a rate-limit binding ([[ratelimits]] in wrangler.toml); that limit is not applied` });
      return undefined;
    }
    return name;
  };

  const raw = env.PROXY_RATE_LIMITS;
  if (raw !== undefined && typeof raw !== "string") {
    issues.push({ subject: "PROXY_RATE_LIMITS", code: "invalid-value", message: "PROXY_RATE_LIMITS must be a comma list of client:BINDING" });
  } else if (raw) {
    for (const entry of raw.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
      // The binding name has no ':', a client name (a JWT sub) may.
      const colon = entry.lastIndexOf(":");
      const client = colon > 0 ? entry.slice(0, colon).trim() : "";
      const name = colon > 0 ? entry.slice(colon + 1).trim() : "";
      if (client === "" || name === "") {
        issues.push({ subject: "PROXY_RATE_LIMITS", code: "invalid-value", message: "PROXY_RATE_LIMITS entries are client:BINDING (or *:BINDING)" });
        continue;
      }
      if (client === "*" ? otherClients !== undefined : clients.has(client)) {
        issues.push({ subject: "PROXY_RATE_LIMITS", code: "duplicate-client", message: `PROXY_RATE_LIMITS names client ${client} twice` });
        continue;
      }
      const b = binding("PROXY_RATE_LIMITS", name);
      if (b === undefined) continue;
      if (client === "*") otherClients = b;
      else clients.set(client, b);
    }
  }

  const single = (variable: string): string | undefined => {
    const v = env[variable];
    if (v === undefined || v === "") return undefined;
    if (typeof v !== "string") {
      issues.push({ subject: variable, code: "invalid-value", message: `${variable} must be a binding name` });
      return undefined;
    }
    return binding(variable, v.trim());
  };
  const admin = single("PROXY_RATE_LIMIT_ADMIN");
  const webhooks = single("PROXY_RATE_LIMIT_WEBHOOKS");

  let keyBy: RateLimitSettings["keyBy"] = "client";
  const key = env.PROXY_RATE_LIMIT_KEY;
  if (key === "client-and-source") keyBy = key;
  else if (key !== undefined && key !== "" && key !== "client") {
    issues.push({ subject: "PROXY_RATE_LIMIT_KEY", code: "invalid-value", message: "PROXY_RATE_LIMIT_KEY must be client or client-and-source; counting per client meanwhile" });
  }
  return { clients, otherClients, admin, webhooks, keyBy };
}
