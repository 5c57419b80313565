/**
 * A Bulk Data Access (v2) server for fhir-edge's tests, on loopback, following the IG's flow:
 * kick-off (`$export` at system, `Patient` and `Group/<id>` level, GET with a query or POST with a
 * Parameters body, `Prefer: respond-async` required) answers 202 with a `Content-Location` outside
 * the FHIR base (`<origin>/bulkstatus/<id>`); the status URL answers 202 with `X-Progress` and
 * `Retry-After` for the first polls, then 200 with the manifest; `DELETE` cancels (later polls 404);
 * a failed export's status is a 500 OperationOutcome; each export has an error file of
 * OperationOutcomes.
 *
 * Two FHIR bases on one host, for the two places files live:
 * - `/fhir`: files on the same host, outside the base (`<origin>/bulkfiles/<id>/<name>`), needing
 *   the bearer token (`requiresAccessToken: true`);
 * - `/storage-fhir`: files on a separate "storage" server (another port), pre-signed
 *   (`?sig=<hmac>`), `requiresAccessToken: false`; like S3, a request that also carries an
 *   `Authorization` header is refused.
 *
 * Test knobs: `largeFile(bytes)` adds a generated `Large.ndjson` of that size to later exports (never
 * held in memory here either); `foreignFile(url)` adds a file on another host; `_type=Stall`
 * gives a file that sends one line (or at least `stallAfter(bytes)`) and then nothing; `_type=Fail` gives a failed export;
 * `failNextKickoffs(n)` answers the next kick-offs 503. Every request is recorded.
 *
 * Runs under Node 22 type stripping: only erasable TypeScript syntax.
 */
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createHmac, randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";

export interface BulkRequestRecord {
  server: "ehr" | "storage";
  method: string;
  path: string;
  authorization: string | undefined;
  prefer: string | undefined;
  acceptEncoding: string | undefined;
}

export interface BulkServerOptions {
  /** Whether a request's Authorization header is a token this server accepts. */
  expectAuthorization: (header: string | undefined) => boolean | Promise<boolean>;
  /** Polls answered 202 before the manifest is ready; default 2. */
  pollsBeforeDone?: number;
  /** Lines in each resource file; default 3. */
  linesPerFile?: number;
  /**
   * gzip small files for a client that accepts it. Off by default: wrangler's test harness
   * carries the Worker's outbound requests through Node, which decodes a gzip answer but keeps
   * its Content-Encoding, so a Worker under the harness cannot read a gzip upstream faithfully.
   */
  gzip?: boolean;
}

export interface BulkServer {
  /** `http://127.0.0.1:PORT` of the EHR. */
  origin: string;
  /** The FHIR base whose files are on the EHR host: `<origin>/fhir`. */
  fhirBase: string;
  /** The FHIR base whose files are on the storage host: `<origin>/storage-fhir`. */
  storageFhirBase: string;
  /** `http://127.0.0.1:PORT` of the storage server. */
  storageOrigin: string;
  readonly requests: BulkRequestRecord[];
  /** The text of a generated file, as the server sends it (for comparing downloads). */
  fileText(exportId: string, name: string): string;
  largeFile(bytes: number | undefined): void;
  /** How much of `Stall.ndjson` is sent before it falls silent: whole lines up to at least `bytes` (default: one line). */
  stallAfter(bytes: number): void;
  foreignFile(url: string | undefined): void;
  failNextKickoffs(n: number): void;
  close(): Promise<void>;
}

interface ExportJob {
  id: string;
  request: string;
  types: string[];
  since: string | undefined;
  storage: boolean;
  polls: number;
  cancelled: boolean;
  largeBytes: number | undefined;
  foreignUrl: string | undefined;
}

const DEFAULT_TYPES = ["Patient", "Observation"];
const SIGNING_KEY = randomUUID();

function outcome(res: ServerResponse, status: number, code: string, diagnostics: string): void {
  res.writeHead(status, { "Content-Type": "application/fhir+json" });
  res.end(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] }));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function sign(path: string): string {
  return createHmac("sha256", SIGNING_KEY).update(path).digest("hex");
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

/** One line of a generated file: a small resource whose id numbers the line. */
function line(type: string, i: number): string {
  return JSON.stringify({ resourceType: type, id: `${type.toLowerCase()}-${i}`, meta: { versionId: "1" } }) + "\n";
}

/** What `Large.ndjson` repeats: 256 lines of NDJSON (the file is this block over and over, cut at its size). */
export const LARGE_FILE_BLOCK: Buffer = Buffer.from(Array.from({ length: 256 }, (_, i) => line("Observation", i)).join(""));

/** Streams `bytes` bytes of NDJSON, with backpressure: never more than one chunk in memory. */
function streamLarge(res: ServerResponse, bytes: number): void {
  const block = LARGE_FILE_BLOCK;
  let left = bytes;
  const write = (): void => {
    while (left > 0) {
      const chunk = left >= block.length ? block : block.subarray(0, left);
      left -= chunk.length;
      if (!res.write(chunk)) {
        res.once("drain", write);
        return;
      }
    }
    res.end();
  };
  write();
}

export async function startBulkServer(opts: BulkServerOptions): Promise<BulkServer> {
  const pollsBeforeDone = opts.pollsBeforeDone ?? 2;
  const linesPerFile = opts.linesPerFile ?? 3;
  const jobs = new Map<string, ExportJob>();
  const requests: BulkRequestRecord[] = [];
  let largeBytes: number | undefined;
  let stallAfterBytes = 1;
  let foreignUrl: string | undefined;
  let failKickoffs = 0;
  let origin = "";
  let storageOrigin = "";

  const record = (server: "ehr" | "storage", req: IncomingMessage): void => {
    requests.push({
      server,
      method: req.method ?? "",
      path: req.url ?? "",
      authorization: req.headers.authorization,
      prefer: req.headers.prefer as string | undefined,
      acceptEncoding: req.headers["accept-encoding"] as string | undefined,
    });
  };

  const fileText = (job: ExportJob, name: string): string | undefined => {
    if (name === "errors.ndjson") {
      return JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "warning", code: "processing", diagnostics: `Export ${job.id}: one resource could not be read` }] }) + "\n";
    }
    if (name === "deleted.ndjson") {
      return JSON.stringify({ resourceType: "Bundle", type: "transaction", entry: [{ request: { method: "DELETE", url: "Patient/gone-1" } }] }) + "\n";
    }
    const type = name.replace(/\.ndjson$/, "");
    if (!job.types.includes(type) || type === "Stall") return undefined;
    let text = "";
    for (let i = 0; i < linesPerFile; i++) text += line(type, i);
    return text;
  };

  const sendFile = (req: IncomingMessage, res: ServerResponse, job: ExportJob, name: string): void => {
    if (name === "Large.ndjson" && job.largeBytes !== undefined) {
      res.writeHead(200, { "Content-Type": "application/fhir+ndjson", "Content-Length": String(job.largeBytes) });
      streamLarge(res, job.largeBytes);
      return;
    }
    if (name === "Stall.ndjson" && job.types.includes("Stall")) {
      res.writeHead(200, { "Content-Type": "application/fhir+ndjson" });
      let sent = 0;
      for (let i = 0; sent < stallAfterBytes; i++) {
        const text = line("Stall", i);
        res.write(text);
        sent += Buffer.byteLength(text);
      }
      return; // and nothing more: the stream stalls until the client goes away
    }
    const text = fileText(job, name);
    if (text === undefined) return outcome(res, 404, "not-found", "No such file");
    const headers: Record<string, string> = { "Content-Type": "application/fhir+ndjson" };
    let body: Buffer = Buffer.from(text);
    if (opts.gzip === true && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""))) {
      body = gzipSync(body);
      headers["Content-Encoding"] = "gzip";
    }
    headers["Content-Length"] = String(body.length);
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  };

  const fileUrl = (job: ExportJob, name: string): string => {
    if (!job.storage) return `${origin}/bulkfiles/${job.id}/${name}`;
    const path = `/s/${job.id}/${name}`;
    return `${storageOrigin}${path}?sig=${sign(path)}`;
  };

  const manifest = (job: ExportJob) => {
    const names = [...job.types.filter((t) => t !== "Stall").map((t) => `${t}.ndjson`)];
    const output = names.map((name) => ({ type: name.replace(/\.ndjson$/, ""), url: fileUrl(job, name), count: linesPerFile }));
    if (job.types.includes("Stall")) output.push({ type: "Stall", url: fileUrl(job, "Stall.ndjson"), count: 1 });
    if (job.largeBytes !== undefined) output.push({ type: "Observation", url: fileUrl(job, "Large.ndjson"), count: 0 });
    if (job.foreignUrl !== undefined) output.push({ type: "Patient", url: job.foreignUrl, count: 1 });
    return {
      transactionTime: new Date().toISOString(),
      request: job.request,
      requiresAccessToken: !job.storage,
      output,
      error: [{ type: "OperationOutcome", url: fileUrl(job, "errors.ndjson") }],
      ...(job.since ? { deleted: [{ type: "Bundle", url: fileUrl(job, "deleted.ndjson") }] } : {}),
    };
  };

  const kickoff = async (req: IncomingMessage, res: ServerResponse, url: URL, storage: boolean): Promise<void> => {
    if (failKickoffs > 0) {
      failKickoffs--;
      return outcome(res, 503, "transient", "Too busy to start an export");
    }
    if (req.headers.prefer !== "respond-async") return outcome(res, 400, "invalid", "A kick-off needs Prefer: respond-async");
    const types = url.searchParams.getAll("_type").flatMap((t) => t.split(","));
    let since = url.searchParams.get("_since") ?? undefined;
    if (req.method === "POST") {
      const text = await readBody(req);
      if (text.trim() !== "") {
        let body: { resourceType?: string; parameter?: Array<{ name?: string; valueString?: string; valueInstant?: string }> };
        try {
          body = JSON.parse(text);
        } catch {
          return outcome(res, 400, "invalid", "The body is not JSON");
        }
        if (body.resourceType !== "Parameters") return outcome(res, 400, "invalid", "A POST kick-off takes a Parameters body");
        for (const p of body.parameter ?? []) {
          if (p.name === "_type" && p.valueString) types.push(...p.valueString.split(","));
          if (p.name === "_since") since = p.valueInstant ?? p.valueString;
        }
      }
    }
    const job: ExportJob = {
      id: randomUUID(),
      request: url.href,
      types: types.length > 0 ? types.map((t) => t.trim()) : DEFAULT_TYPES,
      since,
      storage,
      polls: 0,
      cancelled: false,
      largeBytes,
      foreignUrl,
    };
    jobs.set(job.id, job);
    res.writeHead(202, { "Content-Location": `${origin}/bulkstatus/${job.id}` });
    res.end();
  };

  const status = (req: IncomingMessage, res: ServerResponse, job: ExportJob | undefined): void => {
    if (!job || job.cancelled) return outcome(res, 404, "not-found", "No such export (it may have been cancelled)");
    if (req.method === "DELETE") {
      job.cancelled = true;
      return outcome(res, 202, "informational", "The export is cancelled");
    }
    if (job.types.includes("Fail")) return outcome(res, 500, "exception", "The export failed: Fail is not a resource type");
    if (job.polls < pollsBeforeDone) {
      job.polls++;
      res.writeHead(202, { "X-Progress": `${Math.round((100 * job.polls) / (pollsBeforeDone + 1))}% done`, "Retry-After": "1" });
      res.end();
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json", Expires: new Date(Date.now() + 3600_000).toUTCString() });
    res.end(JSON.stringify(manifest(job)));
  };

  const ehr = http.createServer((req, res) => {
    record("ehr", req);
    void (async () => {
      const url = new URL(req.url ?? "/", origin);
      if (!(await opts.expectAuthorization(req.headers.authorization))) return outcome(res, 401, "login", "A valid bearer token is required");
      const path = url.pathname;
      const match = /^\/(fhir|storage-fhir)(?:\/Patient|\/Group\/[^/]+)?\/\$export$/.exec(path);
      if (match && (req.method === "GET" || req.method === "POST")) return kickoff(req, res, url, match[1] === "storage-fhir");
      const statusMatch = /^\/bulkstatus\/([^/]+)$/.exec(path);
      if (statusMatch && (req.method === "GET" || req.method === "DELETE")) return status(req, res, jobs.get(statusMatch[1]!));
      const fileMatch = /^\/bulkfiles\/([^/]+)\/([^/]+)$/.exec(path);
      const job = fileMatch ? jobs.get(fileMatch[1]!) : undefined;
      if (fileMatch && job && !job.storage && (req.method === "GET" || req.method === "HEAD")) return sendFile(req, res, job, fileMatch[2]!);
      return outcome(res, 404, "not-found", "Not found");
    })().catch(() => {
      if (!res.headersSent) outcome(res, 500, "exception", "Server error");
      else res.destroy();
    });
  });

  const storageServer = http.createServer((req, res) => {
    record("storage", req);
    const url = new URL(req.url ?? "/", storageOrigin);
    if (req.headers.authorization) {
      res.writeHead(400, { "Content-Type": "application/xml" });
      res.end("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>");
      return;
    }
    const match = /^\/s\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    const job = match ? jobs.get(match[1]!) : undefined;
    if (!match || !job || url.searchParams.get("sig") !== sign(url.pathname)) {
      res.writeHead(403, { "Content-Type": "application/xml" });
      res.end("<Error><Code>AccessDenied</Code></Error>");
      return;
    }
    sendFile(req, res, job, match[2]!);
  });

  origin = `http://127.0.0.1:${await listen(ehr)}`;
  storageOrigin = `http://127.0.0.1:${await listen(storageServer)}`;
  const close = (server: http.Server) =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });

  return {
    origin,
    fhirBase: `${origin}/fhir`,
    storageFhirBase: `${origin}/storage-fhir`,
    storageOrigin,
    requests,
    fileText: (exportId, name) => {
      const job = jobs.get(exportId);
      return (job && fileText(job, name)) ?? "";
    },
    largeFile: (bytes) => {
      largeBytes = bytes;
    },
    stallAfter: (bytes) => {
      stallAfterBytes = bytes;
    },
    foreignFile: (url) => {
      foreignUrl = url;
    },
    failNextKickoffs: (n) => {
      failKickoffs = n;
    },
    close: async () => {
      await Promise.all([close(ehr), close(storageServer)]);
    },
  };
}
