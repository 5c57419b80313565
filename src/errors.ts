import { operationOutcome } from "./fhir/operation-outcome.ts";
import { FHIR_JSON, type IssueType, type OperationOutcome, type OperationOutcomeIssue } from "./fhir/types.ts";

/**
 * Every error the edge itself produces. Each carries an HTTP status, a FHIR
 * issue type and a stable `code` that tests assert and users can search for;
 * the message may be reworded freely and never holds a secret.
 */
export class EdgeError extends Error {
  readonly status: number;
  readonly issueCode: IssueType;
  readonly code: string;
  readonly expression: string[] | undefined;
  readonly headers: Record<string, string>;
  /** Issues rendered after the edge's own: one per failed source, or an upstream's own issues. */
  readonly moreIssues: readonly OperationOutcomeIssue[];

  constructor(
    status: number,
    issueCode: IssueType,
    code: string,
    message: string,
    options: { expression?: string[]; headers?: Record<string, string>; cause?: unknown; moreIssues?: readonly OperationOutcomeIssue[] } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.issueCode = issueCode;
    this.code = code;
    this.expression = options.expression;
    this.headers = options.headers ?? {};
    this.moreIssues = options.moreIssues ?? [];
  }
}

/** 400: the request itself is malformed or unsafe. */
export class InvalidRequestError extends EdgeError {
  constructor(code: string, message: string, expression?: string[]) {
    super(400, "invalid", code, message, expression ? { expression } : {});
  }
}

/** 401: no credentials, or credentials that fail verification. */
export class UnauthenticatedError extends EdgeError {
  constructor(code: string, message: string, challenge: string) {
    super(401, "login", code, message, { headers: { "WWW-Authenticate": challenge } });
  }
}

/** 403: valid credentials that do not allow this request. */
export class ForbiddenError extends EdgeError {
  constructor(code: string, message: string) {
    super(403, "forbidden", code, message);
  }
}

export class NotFoundError extends EdgeError {
  constructor(code: string, message: string) {
    super(404, "not-found", code, message);
  }
}

export class MethodNotAllowedError extends EdgeError {
  constructor(method: string, allowed: readonly string[]) {
    super(405, "not-supported", "method-not-allowed", `Method ${method} is not supported by the edge`, {
      headers: { Allow: allowed.join(", ") },
    });
  }
}

/** 406: a format the edge cannot produce (the aggregate answers JSON only). */
export class NotAcceptableError extends EdgeError {
  constructor(code: string, message: string) {
    super(406, "not-supported", code, message);
  }
}

/** Why a `_cursor` of `/aggregate` is refused; each is a 400 and nothing is fetched. */
export type CursorRejection = "invalid" | "expired" | "foreign";

/**
 * 400: an aggregate paging cursor that was altered or is not HMAC-signed by
 * this edge (`cursor-invalid`), has expired (`cursor-expired`), or belongs to
 * another client, another resource type or a source the caller may not use
 * (`cursor-foreign`).
 */
export class CursorRejectedError extends EdgeError {
  constructor(reason: CursorRejection, message: string) {
    super(400, "invalid", `cursor-${reason}`, message);
  }
}

/** 500: a transform handler given to `createEdge()` threw; names the resource type only, never the resource. */
export class TransformFailedError extends EdgeError {
  constructor(resourceType: string, cause: unknown) {
    super(500, "exception", "transform-failed", `The transform handler for ${resourceType} failed`, { cause });
  }
}

/** 500: a source or channel is misconfigured; names it and the field, never a value. */
export class ConfigurationError extends EdgeError {
  constructor(code: string, message: string, expression?: string[]) {
    super(500, "exception", code, message, expression ? { expression } : {});
  }
}

/** 502: the upstream (or its token endpoint) could not be reached or answered badly. */
export class UpstreamUnavailableError extends EdgeError {
  constructor(code: string, message: string, cause?: unknown) {
    super(502, "transient", code, message, { cause });
  }
}

/** 502: the source answered 401 to the edge's credentials (after the one refresh): the client's own were fine. */
export class UpstreamUnauthorizedError extends UpstreamUnavailableError {
  constructor(sourceName: string) {
    super("upstream-unauthorized", `Source ${sourceName} refused the edge's credentials (upstream 401); check the source's auth configuration`);
  }
}

/**
 * 499 (nginx's "client closed request"): the caller gave up before the source
 * answered (a client that disconnected, an aggregate past its timeout), so
 * the edge stopped retrying. Nobody reads it; it names the case in the log.
 */
export class RequestAbandonedError extends EdgeError {
  constructor(sourceName: string) {
    super(499, "incomplete", "request-abandoned", `The caller gave up before source ${sourceName} answered; the edge stopped asking it`);
  }
}

/** 502: the source's answer ended early or broke before the edge had sent any of it. */
export class UpstreamAnswerBrokenError extends UpstreamUnavailableError {
  constructor(sourceName: string, cause?: unknown) {
    super("upstream-answer-broken", `Source ${sourceName}'s answer ended early or broke; nothing of it was passed on`, cause);
  }
}

/** 504: the upstream did not answer within the source's `timeout` (or the aggregate's `AGGREGATE_TIMEOUT`). */
export class UpstreamTimeoutError extends EdgeError {
  constructor(message: string) {
    super(504, "timeout", "upstream-timeout", message);
  }
}

/**
 * An upstream's own non-2xx answer where the edge has to report it (one
 * source of an aggregate): its status, and its OperationOutcome issues when
 * it sent some. 5xx, 408 and 429 are `transient`, other statuses `processing`.
 */
export class UpstreamErrorStatusError extends EdgeError {
  constructor(sourceName: string, status: number, upstreamIssues: readonly OperationOutcomeIssue[]) {
    const transient = status >= 500 || status === 408 || status === 429;
    super(status, transient ? "transient" : "processing", "upstream-error-status", `Source ${sourceName} answered ${status}`, { moreIssues: upstreamIssues });
  }
}

/**
 * A source's next link pointed off its configured base: the edge does not
 * follow it (no host steering), so that source's remaining pages are left out.
 * Reported as an outcome entry of the aggregate page, never as the response.
 */
export class NextLinkRefusedError extends EdgeError {
  constructor(sourceName: string) {
    super(502, "processing", "next-link-refused", `Source ${sourceName} gave a next link outside its FHIR base; its remaining pages are not followed`);
  }
}

/** In an aggregate page: its next link would be too long to be accepted back, so paging stops there. */
export class CursorTooLargeError extends EdgeError {
  constructor(limit: number) {
    super(
      500,
      "too-costly",
      "cursor-too-large",
      `This page's next link would carry more than ${limit / 1024} KB of source positions (many sources, or long paging links at the sources), so it is left out and paging stops here; ask fewer sources or narrow the search`,
    );
  }
}

/** 502: an aggregate where no source answered; one issue per source says why. */
export class NoSourceAnsweredError extends EdgeError {
  constructor(failures: ReadonlyArray<{ source: string; error: unknown }>, requestId: string) {
    super(502, "transient", "aggregate-no-source-answered", `No source answered (${failures.map((f) => f.source).join(", ")})`, {
      moreIssues: failures.flatMap((f) => outcomeOf(f.error, requestId).issue),
    });
  }
}

function asEdgeError(err: unknown): EdgeError {
  return err instanceof EdgeError ? err : new EdgeError(500, "exception", "internal-error", "The edge failed to handle this request");
}

/**
 * The OperationOutcome of an error: the edge's issue, then any issues it
 * carries (an upstream's, or one per failed source). Also used where an error
 * becomes part of a larger answer (a failed source of an aggregate, a batch
 * entry) rather than the whole response. Anything but an {@link EdgeError}
 * is an `internal-error` whose detail stays out of it.
 * @see https://hl7.org/fhir/R4/operationoutcome.html
 */
export function outcomeOf(err: unknown, requestId: string): OperationOutcome {
  const edgeError = asEdgeError(err);
  const body = operationOutcome({
    issueCode: edgeError.issueCode,
    code: edgeError.code,
    message: edgeError.message,
    requestId,
    ...(edgeError.expression ? { expression: edgeError.expression } : {}),
  });
  body.issue.push(...edgeError.moreIssues);
  return body;
}

/** The HTTP status an error stands for: its own for an {@link EdgeError}, else 500. */
export function statusOf(err: unknown): number {
  return asEdgeError(err).status;
}

/**
 * The one place errors become responses. An {@link EdgeError} is rendered as
 * its OperationOutcome; anything else is a 500 `exception` whose detail stays
 * in the log.
 */
export function renderError(err: unknown, requestId: string): Response {
  const edgeError = asEdgeError(err);
  const body = outcomeOf(edgeError, requestId);
  return new Response(JSON.stringify(body), {
    status: edgeError.status,
    headers: { "Content-Type": FHIR_JSON, "X-Request-Id": requestId, ...edgeError.headers },
  });
}
