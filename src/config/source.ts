import { err, ok, type Result } from "../result.ts";
import { isHttpUrl } from "../url.ts";
import { HOP_BY_HOP } from "../upstream/hop-by-hop.ts";
import { resolveEnvValue } from "./env-value.ts";
import type { ConfigIssue, JwtAlg, ProtectionPolicy, RetryPolicy, SourceConfig, UpstreamAuth } from "./types.ts";

/** What either declaration form (connection string or JSON) hands to validation. */
export interface SourceInput {
  /** The upstream base URL (`https://` or `http://`), query-free. */
  url: string | undefined;
  /** Parameters by the names of design.md section 1a; values are strings, or JSON values in the JSON form. */
  fields: Map<string, unknown>;
  headers: Array<[string, string]>;
}

export interface ResolveContext {
  /** Where `env:NAME` values are looked up: the Worker's bindings. */
  env: Readonly<Record<string, unknown>>;
  allowInsecureHttp: boolean;
}

export const DEFAULT_RETRY: RetryPolicy = {
  statusCodes: new Set([408, 429, 500, 502, 503, 504]),
  methods: new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]),
  maxAttempts: 5,
  backoffFactor: 0.5,
  maxBackoffWait: 60,
};
export const DEFAULT_TIMEOUT_SECONDS = 30;
/** Defaults of the protection parameters (docs/protection.md). */
export const DEFAULT_PROTECTION = {
  circuitFailureThreshold: 5,
  circuitFailureWindowSeconds: 60,
  circuitOpenSeconds: 5,
  retryBudgetPercent: 20,
  retryBudgetMinRetries: 10,
} as const;
export const DEFAULT_SCOPE = "system/*.read system/*.write";

const KNOWN_FIELDS = new Set([
  "client_id",
  "client_secret",
  "token_url",
  "scope",
  "audience",
  "token_auth",
  "use_jwt_assertion",
  "private_key",
  "kid",
  "alg",
  "token",
  "username",
  "password",
  "retry_status_codes",
  "retryable_methods",
  "max_attempts",
  "retry_backoff_factor",
  "max_backoff_wait",
  "timeout",
  "rewrite_bodies",
  "bulk_file_hosts",
  "bulk_proxy_all_files",
  "circuit_failure_threshold",
  "circuit_failure_window",
  "circuit_open_seconds",
  "retry_budget_percent",
  "retry_budget_min_retries",
]);
/** A host as `bulk_file_hosts` lists it: a DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port. */
const FILE_HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
const ALGS: ReadonlySet<string> = new Set<JwtAlg>(["RS384", "ES384", "RS256", "ES256"]);
/** An HTTP field name (token). @see https://www.rfc-editor.org/rfc/rfc9110#section-5.1 */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A parameter name the edge may repeat back in a message; anything else could be part of a value. */
export const PARAMETER_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** What an upstream header value (and a static token) may hold: printable ASCII and tab. Anything else throws or is logged by the runtime. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
/**
 * Headers the edge owns on the upstream request; an extra header may not set
 * them. The hop-by-hop ones come from the list the forwarder drops, so the two
 * cannot drift apart (as `FHIR_CHANNELS` target headers do).
 */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([...HOP_BY_HOP, "host", "content-length"]);

/**
 * Validates one source's parameters and resolves `env:NAME` values against
 * the Worker's bindings. Collects every problem instead of stopping at the
 * first, and never puts a value in a message.
 * @see docs/configuration.md#sources
 */
export function resolveSource(name: string, input: SourceInput, ctx: ResolveContext): Result<SourceConfig, ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const issue = (field: string | undefined, code: string, message: string) =>
    issues.push({ subject: name, ...(field ? { field } : {}), code, message: `Source ${name}: ${message}` });

  for (const key of input.fields.keys()) {
    if (KNOWN_FIELDS.has(key)) continue;
    if (key === "client_secret_path") {
      issue(key, "unsupported-field", "client_secret_path reads a file, which a Worker cannot; use client_secret=env:SECRET_NAME");
    } else if (PARAMETER_NAME.test(key)) {
      issue(key, "unknown-field", `unknown parameter ${key}`);
    } else {
      // Not echoed: such a "name" is most often a piece of a value, split off by a raw `?`, `&` or `=` (a password in the URL).
      issue(undefined, "unknown-field", "a parameter name is not one the edge knows; percent-encode ?, & and = inside values and the URL's user info");
    }
  }

  /** A present, non-empty string value with `env:` resolved, or undefined. */
  const str = (field: string): string | undefined => {
    const raw = input.fields.get(field);
    if (raw === undefined || raw === null) return undefined;
    if (typeof raw !== "string") {
      issue(field, "invalid-value", `${field} must be a string`);
      return undefined;
    }
    if (raw.startsWith("env:")) return resolveEnvValue(raw, ctx.env, (i) => issue(field, i.code, i.message), field);
    if (raw === "") {
      issue(field, "invalid-value", `${field} is empty`);
      return undefined;
    }
    return raw;
  };
  const num = (field: string, fallback: number, valid: (n: number) => boolean, rule: string): number => {
    const raw = input.fields.get(field);
    if (raw === undefined) return fallback;
    const n = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
    if (!Number.isFinite(n) || !valid(n)) {
      issue(field, "invalid-value", `${field} must be ${rule}`);
      return fallback;
    }
    return n;
  };
  const list = (field: string): string[] | undefined => {
    const raw = input.fields.get(field);
    if (raw === undefined) return undefined;
    if (Array.isArray(raw)) return raw.map((v) => String(v).trim());
    if (typeof raw === "string") return raw.split(",").map((v) => v.trim()).filter((v) => v !== "");
    issue(field, "invalid-value", `${field} must be a comma-separated list`);
    return undefined;
  };
  const oneOf = <T extends string>(field: string, allowed: readonly T[], fallback: T): T => {
    const raw = input.fields.get(field);
    if (raw === undefined) return fallback;
    const value = typeof raw === "string" ? raw : String(raw);
    if ((allowed as readonly string[]).includes(value)) return value as T;
    issue(field, "invalid-value", `${field} must be one of ${allowed.join(", ")}`);
    return fallback;
  };

  const base = validateBaseUrl(input.url, ctx.allowInsecureHttp);
  if (!base.ok) issue("url", base.error.code, base.error.message);

  const auth = resolveAuth(str, oneOf, input.fields, issue);

  const headers: Array<[string, string]> = [];
  for (const [headerName, rawValue] of input.headers) {
    const lower = headerName.toLowerCase();
    const field = `header.${headerName}`;
    if (!HEADER_NAME.test(headerName)) {
      issue("headers", "invalid-header", "a header name is not a valid HTTP header name (letters, digits and !#$%&'*+.^_`|~-)");
    } else if (RESERVED_HEADERS.has(lower)) {
      issue(field, "reserved-header", `the edge sets ${headerName} itself`);
    } else if (lower === "authorization" && auth.kind !== "none") {
      issue(field, "conflicting-auth", "an Authorization header conflicts with the source's auth method");
    } else {
      const value = resolveEnvValue(rawValue, ctx.env, (x) => issue(field, x.code, x.message), field);
      if (value === undefined) continue;
      if (!HEADER_VALUE.test(value)) issue(field, "invalid-header", `${field} holds a character other than printable ASCII (a line break, NUL, or non-ASCII text the runtime would log)`);
      else headers.push([headerName, value]);
    }
  }

  const statusCodes = list("retry_status_codes");
  const codes = new Set<number>();
  for (const code of statusCodes ?? []) {
    const n = Number(code);
    if (!Number.isInteger(n) || n < 100 || n > 599) issue("retry_status_codes", "invalid-value", "retry_status_codes must be HTTP status codes");
    else codes.add(n);
  }
  const methodList = list("retryable_methods");
  const methods = new Set<string>();
  for (const m of methodList ?? []) {
    const upper = m.toUpperCase();
    // Names the allowed methods, not the one written: a value never goes into a message, in case it is a secret pasted in the wrong place.
    if (!METHODS.has(upper)) issue("retryable_methods", "invalid-value", `retryable_methods must list methods the edge proxies (${[...METHODS].join(", ")})`);
    else methods.add(upper);
  }
  const retry: RetryPolicy = {
    statusCodes: statusCodes ? codes : DEFAULT_RETRY.statusCodes,
    methods: methodList ? methods : DEFAULT_RETRY.methods,
    maxAttempts: num("max_attempts", DEFAULT_RETRY.maxAttempts, (n) => Number.isInteger(n) && n >= 1 && n <= 20, "a whole number from 1 to 20"),
    backoffFactor: num("retry_backoff_factor", DEFAULT_RETRY.backoffFactor, (n) => n >= 0 && n <= 60, "a number of seconds from 0 to 60"),
    maxBackoffWait: num("max_backoff_wait", DEFAULT_RETRY.maxBackoffWait, (n) => n >= 0 && n <= 600, "a number of seconds from 0 to 600"),
  };
  const timeout = num("timeout", DEFAULT_TIMEOUT_SECONDS, (n) => n > 0 && n <= 600, "a number of seconds above 0, at most 600");
  const rewriteBodies = oneOf("rewrite_bodies", ["bundles", "all"] as const, "bundles");
  const fileHosts: string[] = [];
  for (const host of list("bulk_file_hosts") ?? []) {
    const lower = host.toLowerCase();
    if (FILE_HOST.test(lower)) fileHosts.push(lower);
    else issue("bulk_file_hosts", "invalid-value", "bulk_file_hosts must be host names (optionally host:port), comma-separated, without scheme or path");
  }
  const proxyAllFiles = oneOf("bulk_proxy_all_files", ["true", "false"] as const, "false") === "true";
  const d = DEFAULT_PROTECTION;
  const whole = (n: number) => Number.isInteger(n);
  const protection: ProtectionPolicy = {
    circuitFailureThreshold: num("circuit_failure_threshold", d.circuitFailureThreshold, (n) => whole(n) && n >= 0 && n <= 1000, "a whole number from 0 (off) to 1000"),
    circuitFailureWindowMs: Math.round(1000 * num("circuit_failure_window", d.circuitFailureWindowSeconds, (n) => n > 0 && n <= 3600, "a number of seconds above 0, at most 3600")),
    circuitOpenMs: Math.round(1000 * num("circuit_open_seconds", d.circuitOpenSeconds, (n) => n > 0 && n <= 3600, "a number of seconds above 0, at most 3600")),
    retryBudgetPercent: num("retry_budget_percent", d.retryBudgetPercent, (n) => n >= 0 && n <= 100, "a percentage from 0 to 100"),
    retryBudgetMinRetries: num("retry_budget_min_retries", d.retryBudgetMinRetries, (n) => whole(n) && n >= 0 && n <= 100000, "a whole number from 0"),
    probeLeaseMs: Math.round(timeout * 1000),
    maxHoldMs: Math.round(retry.maxBackoffWait * 1000),
  };

  if (issues.length > 0 || !base.ok) return err(issues);
  const url = new URL(base.value);
  const basePath = url.pathname.replace(/\/+$/, "");
  return ok({
    name,
    baseUrl: url.origin + basePath,
    origin: url.origin,
    basePath,
    auth,
    headers,
    retry,
    timeoutMs: Math.round(timeout * 1000),
    rewriteBodies,
    bulk: { fileHosts, proxyAllFiles },
    protection,
  });
}

type Issue = (field: string | undefined, code: string, message: string) => void;

function resolveAuth(
  str: (field: string) => string | undefined,
  oneOf: <T extends string>(field: string, allowed: readonly T[], fallback: T) => T,
  fields: Map<string, unknown>,
  issue: Issue,
): UpstreamAuth {
  const token = str("token");
  const username = str("username");
  const password = str("password");
  const clientId = str("client_id");
  const clientSecret = str("client_secret");
  const privateKey = str("private_key");
  const tokenUrl = str("token_url");
  const scope = str("scope") ?? DEFAULT_SCOPE;
  const audience = str("audience");
  const kid = str("kid");
  const tokenAuth = oneOf("token_auth", ["basic", "post"] as const, "basic");
  const alg = oneOf("alg", [...ALGS] as JwtAlg[], "RS384");
  const useJwtRaw = fields.get("use_jwt_assertion");
  const useJwt = useJwtRaw === true || useJwtRaw === "true";
  if (useJwtRaw !== undefined && !useJwt && useJwtRaw !== false && useJwtRaw !== "false") {
    issue("use_jwt_assertion", "invalid-value", "use_jwt_assertion must be true or false");
  }

  const methods: string[] = [];
  if (fields.has("token")) methods.push("token");
  if (fields.has("username") || fields.has("password")) methods.push("basic");
  if (fields.has("client_id") || fields.has("client_secret") || useJwt) methods.push(useJwt ? "jwt assertion" : "client credentials");
  if (methods.length > 1) {
    issue("auth", "conflicting-auth", `more than one auth method is configured (${methods.join(", ")}); choose one`);
    return { kind: "none" };
  }

  if (tokenUrl !== undefined && !isHttpUrl(tokenUrl)) issue("token_url", "invalid-url", "token_url must be an absolute https or http URL");
  if (!useJwt && (fields.has("private_key") || fields.has("kid") || fields.has("alg"))) {
    issue("use_jwt_assertion", "missing-field", "private_key, kid and alg need use_jwt_assertion=true");
  }
  const oauthOnly = ["token_url", "scope", "audience", "token_auth"].filter((f) => fields.has(f));
  if (methods[0] !== "client credentials" && methods[0] !== "jwt assertion" && oauthOnly.length > 0) {
    issue(oauthOnly[0], "missing-field", `${oauthOnly.join(", ")} need client_id`);
  }

  switch (methods[0]) {
    case "token":
      // It goes into the Authorization header of every request, where a line break or NUL throws.
      if (token && !HEADER_VALUE.test(token)) issue("token", "invalid-value", "token holds a character other than printable ASCII, which the Authorization header cannot carry");
      return token ? { kind: "bearer", token } : { kind: "none" };
    case "basic":
      if (username === undefined && !fields.has("username")) issue("username", "missing-field", "password needs username");
      if (password === undefined && !fields.has("password")) issue("password", "missing-field", "username needs password");
      if (username !== undefined && username.includes(":")) issue("username", "invalid-value", "a basic-auth username cannot contain ':'");
      return { kind: "basic", username: username ?? "", password: password ?? "" };
    case "client credentials":
      if (!fields.has("client_id")) issue("client_id", "missing-field", "client_secret needs client_id");
      if (!fields.has("client_secret")) issue("client_secret", "missing-field", "client credentials need client_secret (or use_jwt_assertion=true and private_key)");
      return {
        kind: "client-credentials",
        clientId: clientId ?? "",
        clientSecret: clientSecret ?? "",
        tokenAuth,
        scope,
        ...(tokenUrl ? { tokenUrl } : {}),
        ...(audience ? { audience } : {}),
      };
    case "jwt assertion":
      if (!fields.has("client_id")) issue("client_id", "missing-field", "a JWT assertion needs client_id");
      if (fields.has("client_secret")) issue("client_secret", "conflicting-auth", "use either client_secret or use_jwt_assertion, not both");
      if (!fields.has("private_key")) issue("private_key", "missing-field", "use_jwt_assertion=true needs private_key");
      else if (privateKey !== undefined && !looksLikePrivateKey(privateKey)) {
        issue("private_key", "invalid-key", "private_key must be a PKCS#8 PEM, a private JWK, or a JWK Set of private JWKs");
      }
      return {
        kind: "jwt-assertion",
        clientId: clientId ?? "",
        privateKey: privateKey ?? "",
        alg,
        scope,
        ...(kid ? { kid } : {}),
        ...(tokenUrl ? { tokenUrl } : {}),
        ...(audience ? { audience } : {}),
      };
    default:
      return { kind: "none" };
  }
}

/** Built from parts so secret scanners do not take the format check for a key. */
const PKCS8_PEM_HEADER = ["-----BEGIN", "PRIVATE", "KEY-----"].join(" ");

/** A PKCS#8 PEM, a private JWK, or a JWK Set of private JWKs (the first signs; all are published). */
function looksLikePrivateKey(text: string): boolean {
  const trimmed = text.trim();
  if (trimmed.startsWith(PKCS8_PEM_HEADER)) return true;
  if (!trimmed.startsWith("{")) return false;
  const isPrivateJwk = (jwk: unknown) => {
    const k = jwk as { d?: unknown; kty?: unknown } | null;
    return k !== null && typeof k === "object" && typeof k.d === "string" && typeof k.kty === "string";
  };
  try {
    const parsed = JSON.parse(trimmed) as { keys?: unknown };
    if (Array.isArray(parsed.keys)) return parsed.keys.length > 0 && parsed.keys.every(isPrivateJwk);
    return isPrivateJwk(parsed);
  } catch {
    return false;
  }
}


function validateBaseUrl(raw: string | undefined, allowInsecureHttp: boolean): Result<string, { code: string; message: string }> {
  if (raw === undefined || raw === "") return err({ code: "missing-field", message: "url is required" });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return err({ code: "invalid-url", message: "url is not a valid absolute URL" });
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return err({ code: "invalid-url", message: "url must be https (or http)" });
  if (url.protocol === "http:" && !allowInsecureHttp) {
    return err({ code: "insecure-url", message: 'plain-http upstreams need ALLOW_INSECURE_HTTP = "true"' });
  }
  if (url.search || url.hash) return err({ code: "invalid-url", message: "url must not carry a query or fragment; configuration goes in parameters" });
  if (url.username || url.password) return err({ code: "invalid-url", message: "url must not carry credentials; use username and password" });
  return ok(url.href);
}
