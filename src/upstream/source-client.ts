import { credentialsFor, type UpstreamCredentials } from "../auth/upstream/index.ts";
import type { SourceConfig } from "../config/types.ts";
import type { EdgeBindings } from "../context.ts";
import { EdgeError, InvalidRequestError } from "../errors.ts";
import { passOnBody, passOnFile, readAnswerText, type AnswerContext, type PassedBody } from "./answer-body.ts";
import { defaultDeps, forward, unlessAbandoned, type ForwardDeps, type ForwardResult, type UpstreamCall } from "./forward.ts";
import { upstreamRequestHeaders } from "./headers.ts";
import { isRetryable } from "./retry.ts";
import { mayFetch, hostOf } from "./source-hosts.ts";
import { resolveSourcePath } from "./source-path.ts";

/** One request to a source, as a caller of {@link sourceClient} describes it. */
export interface SourceRequest {
  method: string;
  /**
   * The raw path and query after the source's FHIR base, as a client sent
   * them: `""`, `/Patient/1`, `/Patient?name=x`, `?_count=1`. Path safety
   * refuses anything that would leave the base (400 `unsafe-path`).
   */
  path: string;
  /** Goes upstream as `X-Request-Id`, so the source's log and the edge's meet. */
  requestId: string;
  /** The client's headers to pass on: hop-by-hop ones and its credentials for the edge are dropped. Default none. */
  headers?: Headers;
  /** A buffered body may be sent again (a retry, the one resend after a 401); a stream goes once. */
  body?: ArrayBuffer | ReadableStream | null;
  /** Whether the request may be sent twice; default by its method and the source's `retryable_methods`. */
  retryable?: boolean;
  /** When it fires, no further attempt, backoff wait or token lookup starts, and the attempt in flight is aborted. */
  signal?: AbortSignal;
  /** Send no credentials: the reachability probe (metadata is public, and a probe must not fetch tokens). */
  anonymous?: boolean;
  /** Per-attempt timeout in ms; default the source's `timeout`. */
  timeoutMs?: number;
  /**
   * Pass the source's circuit breaker, Retry-After hold and retry budget
   * (docs/protection.md): the calls a client's request makes (proxy,
   * aggregate, Bulk Data), not the edge's own (discovery, probes, the relay).
   */
  guarded?: boolean;
}

/**
 * A request to a location the source handed out by its absolute URL (a Bulk
 * Data status URL, manifest page or file), rather than a path under its base.
 */
export interface LocationRequest extends Omit<SourceRequest, "path" | "anonymous" | "retryable"> {
  url: string;
  /**
   * Send the source's credentials and extra headers. `false`: a location that
   * needs no token (a pre-signed storage URL), which gets neither, and which
   * the source's protection does not count (it is not the source's call).
   */
  credentials: boolean;
  retryable: boolean;
  /** Whether the edge allows plain http at all (`ALLOW_INSECURE_HTTP`). */
  allowInsecureHttp: boolean;
}

/** The one way the edge talks to a source. */
export interface SourceClient {
  readonly source: SourceConfig;
  /**
   * Sends `request` with the source's credentials, header rules, retry
   * policy and the one resend after a 401 on a cached token.
   * @throws InvalidRequestError `unsafe-path`, UpstreamUnavailableError, UpstreamTimeoutError, RequestAbandonedError
   */
  send(request: SourceRequest): Promise<ForwardResult>;
  /**
   * Sends `request` to an absolute URL the source handed out, with the same
   * rules as {@link SourceClient.send}. Only the source's own origin and
   * the hosts it lists in `bulk_file_hosts` are called (403 `bulk-host-not-allowed`).
   * @throws EdgeError `bulk-host-not-allowed`, UpstreamUnavailableError, UpstreamTimeoutError, RequestAbandonedError
   */
  sendTo(request: LocationRequest): Promise<ForwardResult>;
  /** Values that must never appear in an answer to the client (tokens, secrets). */
  secrets(): readonly string[];
  /**
   * The answer's body to stream on to the client: complete, or erroring
   * (never silently short); a body broken before its first byte throws 502.
   * @see passOnBody
   */
  passOn(response: Response, requestId: string): Promise<PassedBody>;
  /** As {@link SourceClient.passOn}, for a Bulk Data file (gigabytes: read in full 1 MB pieces). @see passOnFile */
  passOnFile(response: Response, requestId: string): Promise<PassedBody>;
  /** The answer's whole text, or 502 `upstream-answer-broken`. @see readAnswerText */
  text(response: Response, requestId: string): Promise<string>;
}

function splitPath(path: string): { rest: string; search: string } {
  const q = path.indexOf("?");
  return q === -1 ? { rest: path, search: "" } : { rest: path.slice(0, q), search: path.slice(q) };
}

const NO_HEADERS = new Headers();

/**
 * The client of one source: every upstream request of the edge (proxy,
 * discovery, aggregate, registration, reachability, the relay's `$status`
 * and `$events`) goes through it, so the contract's rules hold at every
 * call site: credentials from the token coordinator, an upstream 401 on a
 * cached token drops that token, fetches a new one and sends the request
 * exactly once more; retries with backoff; the caller's `signal` ends it all.
 * Its caches (credentials, URL rewriters) live per isolate in the modules
 * that own them, so building a client per request costs nothing.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (401 invalid_token)
 * @see docs/upstream-client.md
 */
export function sourceClient(source: SourceConfig, env: EdgeBindings, deps: ForwardDeps = defaultDeps): SourceClient {
  const credentials = () => credentialsFor(source, env, deps.now);
  /** One call with the 401 refresh: `creds` absent sends no token; `extra` are the source's configured headers. */
  async function run(url: string, request: Omit<SourceRequest, "path">, retryable: boolean, creds: UpstreamCredentials | undefined, extra: SourceConfig["headers"]): Promise<ForwardResult> {
    const clientHeaders = request.headers ?? NO_HEADERS;
    /** The `Authorization` of the latest attempt: the token a 401 refused. */
    let sent: string | undefined;
    const call: UpstreamCall = {
      sourceName: source.name,
      method: request.method,
      url,
      headers: async () => {
        sent = creds ? await creds.authorization() : undefined;
        return upstreamRequestHeaders(clientHeaders, extra, sent, request.requestId);
      },
      body: request.body ?? null,
      retryable,
      retry: source.retry,
      timeoutMs: request.timeoutMs ?? source.timeoutMs,
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.guarded ? { protection: source.protection } : {}),
    };
    const first = await forward(call, deps);
    if (first.response.status !== 401 || !creds || call.body instanceof ReadableStream) return first;
    if (!(await unlessAbandoned(creds.invalidate(sent), request.signal, source.name))) return first;
    await first.response.body?.cancel();
    const again = await forward({ ...call, retryable: false }, deps);
    return { response: again.response, attempts: first.attempts + again.attempts };
  }

  const answerContext = (response: Response, requestId: string): AnswerContext => {
    const length = response.headers.get("Content-Length");
    // An encoded body reaches the edge decoded: its Content-Length is not the length read. A 204 or
    // 304 has no body whatever its Content-Length says (a 304's is the representation's).
    const known = length !== null && /^\d{1,15}$/.test(length) && !response.headers.has("Content-Encoding") && response.status !== 204 && response.status !== 304;
    return { requestId, sourceName: source.name, idleMs: source.timeoutMs, ...(known ? { expectedBytes: Number(length) } : {}) };
  };
  return {
    source,
    async send(request) {
      const { rest, search } = splitPath(request.path);
      const resolved = resolveSourcePath(source, rest, search);
      if (!resolved.ok) {
        throw new InvalidRequestError("unsafe-path", `The path is not allowed (${resolved.error}): it must stay under the source's FHIR base`);
      }
      const retryable = request.retryable ?? isRetryable(request.method, request.headers ?? NO_HEADERS, resolved.value.segments, source.retry);
      return run(resolved.value.url, request, retryable, request.anonymous ? undefined : credentials(), source.headers);
    },
    async sendTo(request) {
      // The edge never calls a host it was not configured for; a signed URL's host may have been dropped since.
      if (!mayFetch(source, request.url, request.allowInsecureHttp)) {
        throw new EdgeError(403, "forbidden", "bulk-host-not-allowed", `Source ${source.name} does not list ${hostOf(request.url)} in bulk_file_hosts`);
      }
      // A location without credentials is not the source's own call: no token, no extra headers, no protection.
      if (!request.credentials) return run(request.url, { ...request, guarded: false }, request.retryable, undefined, []);
      return run(request.url, request, request.retryable, credentials(), source.headers);
    },
    secrets: () => credentials().secrets(),
    passOn: (response, requestId) => passOnBody(response.body, answerContext(response, requestId)),
    passOnFile: (response, requestId) => passOnFile(response.body, answerContext(response, requestId)),
    text: (response, requestId) => readAnswerText(response, answerContext(response, requestId)),
  };
}

/**
 * The entry point for a Durable Object (the channel's `$status` and
 * `$events` calls): one GET (or other method) of `path` at the source, as
 * FHIR JSON, through {@link sourceClient}. The answer is returned whatever
 * its status; a source that cannot be reached throws.
 * @param path the raw path and query after the source's base, e.g. `/Subscription/1/$status`
 */
export async function fetchFromSource(source: SourceConfig, env: EdgeBindings, path: string, method: string, signal?: AbortSignal): Promise<Response> {
  const { response } = await sourceClient(source, env).send({
    method,
    path,
    requestId: crypto.randomUUID(),
    headers: new Headers({ Accept: "application/fhir+json" }),
    ...(signal ? { signal } : {}),
  });
  return response;
}
