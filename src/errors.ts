import { operationOutcome } from "./fhir/operation-outcome.ts";
import { FHIR_JSON, type IssueType } from "./fhir/types.ts";

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

  constructor(
    status: number,
    issueCode: IssueType,
    code: string,
    message: string,
    options: { expression?: string[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.status = status;
    this.issueCode = issueCode;
    this.code = code;
    this.expression = options.expression;
    this.headers = options.headers ?? {};
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

/** 504: the upstream did not answer within the source's `timeout`. */
export class UpstreamTimeoutError extends EdgeError {
  constructor(message: string) {
    super(504, "timeout", "upstream-timeout", message);
  }
}

/**
 * The one place errors become responses. An {@link EdgeError} is rendered as
 * its OperationOutcome; anything else is a 500 `exception` whose detail stays
 * in the log.
 */
export function renderError(err: unknown, requestId: string): Response {
  const edgeError =
    err instanceof EdgeError
      ? err
      : new EdgeError(500, "exception", "internal-error", "The edge failed to handle this request");
  const body = operationOutcome({
    issueCode: edgeError.issueCode,
    code: edgeError.code,
    message: edgeError.message,
    requestId,
    ...(edgeError.expression ? { expression: edgeError.expression } : {}),
  });
  return new Response(JSON.stringify(body), {
    status: edgeError.status,
    headers: { "Content-Type": FHIR_JSON, "X-Request-Id": requestId, ...edgeError.headers },
  });
}
