/** A configuration problem: which source (or setting), which field, what is wrong. Never a value. */
export interface ConfigIssue {
  /** The source or channel name, or the variable (e.g. `PROXY_API_KEYS`) for edge-wide settings. */
  subject: string;
  /** The parameter at fault, as the user wrote it (`client_secret`, `max_attempts`...). */
  field?: string;
  /** Stable code, e.g. `invalid-value`, `missing-field`, `duplicate-source`. */
  code: string;
  message: string;
}

export type JwtAlg = "RS384" | "ES384" | "RS256" | "ES256";

export type UpstreamAuth =
  | { kind: "none" }
  | { kind: "bearer"; token: string }
  | { kind: "basic"; username: string; password: string }
  | {
      kind: "client-credentials";
      clientId: string;
      clientSecret: string;
      tokenAuth: "basic" | "post";
      tokenUrl?: string;
      scope: string;
      audience?: string;
    }
  | {
      kind: "jwt-assertion";
      clientId: string;
      privateKey: string;
      kid?: string;
      alg: JwtAlg;
      tokenUrl?: string;
      scope: string;
      audience?: string;
    };

export interface RetryPolicy {
  statusCodes: ReadonlySet<number>;
  methods: ReadonlySet<string>;
  /** Upstream requests at most, the first one included (fhir-kindling semantics). */
  maxAttempts: number;
  /** Seconds; the n-th retry waits up to `backoffFactor * 2^(n-1)`. */
  backoffFactor: number;
  /** Seconds; caps both the backoff and an upstream `Retry-After`. */
  maxBackoffWait: number;
}

export interface SourceConfig {
  name: string;
  /** The upstream FHIR base without a trailing slash, e.g. `https://ehr.example/fhir/R4`. */
  baseUrl: string;
  /** `new URL(baseUrl).origin`. */
  origin: string;
  /** The base path without a trailing slash (`""` for a server at the root). */
  basePath: string;
  auth: UpstreamAuth;
  /** Extra headers sent upstream on every request. */
  headers: ReadonlyArray<readonly [string, string]>;
  retry: RetryPolicy;
  /** Milliseconds per upstream attempt, until response headers arrive. */
  timeoutMs: number;
  rewriteBodies: "bundles" | "all";
  bulk: BulkSettings;
  /** Circuit breaker, retry budget and Retry-After hold (docs/protection.md). */
  protection: ProtectionPolicy;
}

/** How Bulk Data (`$export`) URLs of a source go through the edge (docs/bulk-data.md). */
export interface BulkSettings {
  /**
   * `bulk_file_hosts`: hosts besides the source's own where the edge may fetch
   * status and file URLs, lower-case, `host` (default port) or `host:port`.
   */
  fileHosts: readonly string[];
  /** `bulk_proxy_all_files=true`: files that need no token upstream go through the edge too. */
  proxyAllFiles: boolean;
}

/** A source's protection under load; see docs/protection.md. */
export interface ProtectionPolicy {
  /** `circuit_failure_threshold`: failures in a row that open the circuit (0: never). */
  circuitFailureThreshold: number;
  /** `circuit_failure_window` in ms: a failure longer than this after the previous one starts a new run. */
  circuitFailureWindowMs: number;
  /** `circuit_open_seconds` in ms: how long an open circuit fails fast before one probe. */
  circuitOpenMs: number;
  /** `retry_budget_percent`: retries may add at most this share of the last 10 s of requests. */
  retryBudgetPercent: number;
  /** `retry_budget_min_retries`: retries allowed per 10 s whatever the share gives. */
  retryBudgetMinRetries: number;
  /** The source's `timeout` in ms: how long a probe may take before another request probes instead. */
  probeLeaseMs: number;
  /** The source's `max_backoff_wait` in ms: the longest hold an upstream's Retry-After can impose. */
  maxHoldMs: number;
}

export const SOURCE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** Path segments the edge routes itself; a source may not take these names. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(["aggregate", "webhooks", "channels", "admin", "status", "metadata"]);
