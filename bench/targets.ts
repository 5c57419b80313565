/**
 * The rows of `npm run bench`: each is a small declarative entry (where it
 * is sent, with which headers, under which label). A feature that lands
 * (aggregation, subscription intake) adds its row here; the harness runs,
 * checks and reports every row alike.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { AGGREGATE_COUNT, PATIENT_ID, SLOW_PREFIX, UPSTREAM_BASE_PATH, intakeNotificationJson } from "./fixtures.ts";

/** What a row goes through; names the base URL and the process whose CPU is the proxy's. */
export type Via = "direct" | "nginx" | "bare-worker" | "floor-worker" | "edge";

/** The Workers whose req/s is compared with the bare pass-through Worker's. */
export const MEASURED_AGAINST_BARE: ReadonlySet<Via> = new Set<Via>(["floor-worker", "edge"]);

/** The payload a row fetches; rows with the same payload are compared with each other. */
export type Payload = "patient" | "searchset" | "aggregate" | "notification";

export interface Target {
  id: string;
  label: string;
  payload: Payload;
  via: Via;
  /** Path and query on the `via` base (no leading slash). */
  path: string;
  headers?: Record<string, string>;
  /** The edge rewrote the upstream's base in the body: the check expects the edge's base instead. */
  rewritten?: boolean;
  /** Count token-endpoint calls for this row. */
  oauth?: boolean;
  /** Default GET. */
  method?: "GET" | "POST";
  /** Request body, sent with every request of the row. */
  body?: string;
  /** Seconds per run, when shorter than the bench's default (slow rows, rows that store what they send). */
  seconds?: number;
  /**
   * The row leaves work behind in the edge (deliveries to a channel's targets), which would
   * disturb the rows measured after it: it runs in its own phase, after all the others.
   */
  isolated?: boolean;
  /** The channel this row feeds: after its runs, the bench waits until every target has the last event. */
  channel?: string;
  /**
   * A body per request from this function of an increasing event number (1, 2, 3, ... across
   * every run of the row), instead of `body`; sent with autocannon, which can.
   */
  numberedBody?: (eventNumber: number) => string;
}

/** The edge's inbound API key for the bench (config in run.ts). */
export const BENCH_API_KEY = "bench-key-0123456789abcdef";
const KEY = { "X-Api-Key": BENCH_API_KEY };
/** The edge's sources: `bench` (no upstream auth) and `bench-oauth` (client credentials). */
export const SOURCE = "bench";
export const OAUTH_SOURCE = "bench-oauth";
/** Aggregation: three sources on the same upstream, `bench-slow` under its path that answers 50 ms late. */
export const SLOW_SOURCE = "bench-slow";
export const SECOND_SOURCE = "bench-b";
export const AGGREGATE_SOURCES = [SOURCE, SECOND_SOURCE, SLOW_SOURCE];
/** The relay channel of the intake row: strict sequencing, every POST the next event number (run.ts). */
export const CHANNEL = "bench";
export const CHANNEL_SECRET = "bench-channel-secret-0123456789";

const upstreamPath = UPSTREAM_BASE_PATH.slice(1);
const READ = `${upstreamPath}/Patient/${PATIENT_ID}`;
const SEARCH = `${upstreamPath}/Patient?_count=100`;

export const PAYLOADS: Record<Payload, string> = {
  patient: "2 KB Patient (read)",
  searchset: "200 KB searchset, 100 entries",
  aggregate: `searchset, _count=${AGGREGATE_COUNT}, source(s) +50 ms`,
  notification: "R5 notification Bundle (POST)",
};

const SLOW_SEARCH = `${SLOW_PREFIX.slice(1)}/${upstreamPath}/Patient?_count=${AGGREGATE_COUNT}`;

export const TARGETS: Target[] = [
  { id: "direct-patient", label: "direct upstream", payload: "patient", via: "direct", path: READ },
  { id: "nginx-patient", label: "nginx proxy_pass", payload: "patient", via: "nginx", path: READ },
  { id: "bare-patient", label: "bare pass-through Worker", payload: "patient", via: "bare-worker", path: READ },
  // The contract's floor: a hand-written Worker doing only the edge's per-request duties (bench/floor-worker.js).
  { id: "floor-patient", label: "floor: hand-written Worker, the edge's duties only", payload: "patient", via: "floor-worker", path: `${SOURCE}/Patient/${PATIENT_ID}`, headers: KEY },
  { id: "edge-patient", label: "edge (streamed)", payload: "patient", via: "edge", path: `${SOURCE}/Patient/${PATIENT_ID}`, headers: KEY },
  { id: "edge-oauth-patient", label: "edge, cached OAuth token", payload: "patient", via: "edge", path: `${OAUTH_SOURCE}/Patient/${PATIENT_ID}`, headers: KEY, oauth: true },
  { id: "direct-searchset", label: "direct upstream", payload: "searchset", via: "direct", path: SEARCH },
  { id: "nginx-searchset", label: "nginx proxy_pass", payload: "searchset", via: "nginx", path: SEARCH },
  { id: "bare-searchset", label: "bare pass-through Worker", payload: "searchset", via: "bare-worker", path: SEARCH },
  // The same 200 KB bytes read as one resource (Bundle/<id>): the edge streams them untouched.
  { id: "edge-searchset-streamed", label: "edge, same bytes streamed (Bundle read)", payload: "searchset", via: "edge", path: `${SOURCE}/Bundle/bench-searchset`, headers: KEY },
  { id: "floor-searchset-rewritten", label: "floor: hand-written Worker, URLs rewritten", payload: "searchset", via: "floor-worker", path: `${SOURCE}/Patient?_count=100`, headers: KEY, rewritten: true },
  { id: "edge-searchset-rewritten", label: "edge, URLs rewritten (search)", payload: "searchset", via: "edge", path: `${SOURCE}/Patient?_count=100`, headers: KEY, rewritten: true },
  // Aggregation: its "× direct" is against the slowest source alone (the floor of any fan-out).
  { id: "direct-slow", label: "direct upstream, slow source alone", payload: "aggregate", via: "direct", path: SLOW_SEARCH, seconds: 2 },
  { id: "edge-slow", label: "edge, slow source alone (proxy)", payload: "aggregate", via: "edge", path: `${SLOW_SOURCE}/Patient?_count=${AGGREGATE_COUNT}`, headers: KEY, rewritten: true, seconds: 2 },
  {
    id: "edge-aggregate",
    label: "edge, aggregate over 3 sources, 1 slow",
    payload: "aggregate",
    via: "edge",
    path: `aggregate/Patient?_count=${AGGREGATE_COUNT}&sources=${AGGREGATE_SOURCES.join(",")}`,
    headers: KEY,
    rewritten: true,
    seconds: 2,
  },
  {
    id: "edge-intake",
    label: "edge, subscription intake (strict channel, 2 targets)",
    payload: "notification",
    via: "edge",
    path: `webhooks/${CHANNEL}`,
    method: "POST",
    body: intakeNotificationJson(1),
    numberedBody: intakeNotificationJson,
    headers: { "X-Api-Key": CHANNEL_SECRET, "Content-Type": "application/fhir+json" },
    seconds: 1,
    isolated: true,
    channel: CHANNEL,
  },
];
