import { err, ok, type Result } from "../result.ts";

/** One entry of a `POST /aggregate` batch, as the edge will run it. */
export interface BatchRequest {
  source: string;
  /** The path after the source (`""` or `/...`), raw. */
  rest: string;
  /** The raw query with its `?`, or `""`. */
  search: string;
}

export type BatchEntryProblem =
  | { status: 400; code: "batch-entry-invalid"; message: string }
  | { status: 405; code: "batch-entry-method"; message: string };

export type BatchProblem = { code: "batch-invalid" | "batch-too-large"; message: string };

/** The most entries one `POST /aggregate` runs: each may take `max_attempts` subrequests of the Worker's budget. */
export const MAX_BATCH_ENTRIES = 100;

/**
 * Checks the body of `POST /aggregate` (pure): a `batch` Bundle of at most
 * {@link MAX_BATCH_ENTRIES} entries. A transaction is refused: it cannot be
 * atomic across sources.
 * @see https://hl7.org/fhir/R4/http.html#transaction
 */
export function readBatch(body: unknown): Result<unknown[], BatchProblem> {
  const bundle = body as { resourceType?: unknown; type?: unknown; entry?: unknown } | null;
  if (bundle === null || typeof bundle !== "object" || bundle.resourceType !== "Bundle") {
    return err({ code: "batch-invalid", message: "POST /aggregate takes a FHIR Bundle of type batch" });
  }
  if (bundle.type !== "batch") {
    return err({ code: "batch-invalid", message: "POST /aggregate runs batch Bundles only: a transaction cannot be atomic across sources; send it to one source at POST /<source>" });
  }
  const entries = bundle.entry === undefined ? [] : bundle.entry;
  if (!Array.isArray(entries)) return err({ code: "batch-invalid", message: "Bundle.entry must be an array" });
  if (entries.length > MAX_BATCH_ENTRIES) return err({ code: "batch-too-large", message: `A batch to /aggregate holds at most ${MAX_BATCH_ENTRIES} entries` });
  return ok(entries);
}

/**
 * Reads one batch entry (pure): a GET whose `request.url` names the source
 * first (`<source>/Patient?name=x`, `/<source>/Patient/1`, or an absolute URL
 * under the edge's root). Writes go to one source's own batch endpoint.
 * @param edgeRoot the edge's root, no trailing slash
 */
export function readBatchEntry(entry: unknown, edgeRoot: string): Result<BatchRequest, BatchEntryProblem> {
  const request = (entry as { request?: { method?: unknown; url?: unknown } } | null)?.request;
  if (!request || typeof request !== "object") return err({ status: 400, code: "batch-entry-invalid", message: "The entry has no request" });
  const method = typeof request.method === "string" ? request.method.toUpperCase() : "";
  if (method !== "GET") {
    return err({ status: 405, code: "batch-entry-method", message: "POST /aggregate runs GET entries (reads and searches); send writes to POST /<source>" });
  }
  let url = typeof request.url === "string" ? request.url.trim() : "";
  if (/^[a-z][a-z0-9+.-]*:/i.test(url)) {
    if (!url.startsWith(`${edgeRoot}/`)) return err({ status: 400, code: "batch-entry-invalid", message: "An absolute request.url must be under this edge" });
    url = url.slice(edgeRoot.length);
  }
  url = url.replace(/^\/+/, "");
  const q = url.indexOf("?");
  const path = q === -1 ? url : url.slice(0, q);
  const search = q === -1 ? "" : url.slice(q);
  const slash = path.indexOf("/");
  const source = slash === -1 ? path : path.slice(0, slash);
  if (source === "") return err({ status: 400, code: "batch-entry-invalid", message: "request.url must start with the source: <source>/<Type>?..." });
  return ok({ source, rest: slash === -1 ? "" : path.slice(slash), search });
}
