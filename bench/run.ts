#!/usr/bin/env node
/**
 * `npm run bench`: what the edge costs, measured side by side in one run.
 *
 * Builds the edge as for deploy, runs it in plain workerd beside a bare
 * pass-through Worker, puts nginx (when installed) beside them, and drives
 * every row of bench/targets.ts with the same load generator against the
 * same fixed upstream, alternating rows so drift hits all alike. Then runs
 * the micro-benchmarks in workerd, then the sections measured their own way
 * in the same workerd: open-loop latency and rate limiting on versus off
 * (bench/open-loop.ts), a large Bulk Data file (bench/bulk-stream.ts), and
 * last the subscription intake; writes bench/results.md and
 * bench/results.svg. Every process it starts, it stops, also on failure.
 *
 * Environment (all optional): BENCH_SECONDS (per run, default 2),
 * BENCH_REPS (default 3), BENCH_CONNECTIONS (the high concurrency, default
 * 32), BENCH_PAIR_CYCLES (cycles of the paired phase, default 6),
 * BENCH_TOKEN_LIFETIME (seconds, default 20), BENCH_LOADGEN
 * (wrk|autocannon; by default wrk when on PATH, else autocannon, which
 * `npm ci` installs; the intake row always uses autocannon), BENCH_SKIP_MICRO=1, BENCH_ROWS=<id>,<id> (a subset of
 * bench/targets.ts; the open-loop section runs when bare-patient is among
 * them), BENCH_BULK_MB (the Bulk Data file, MiB, default 256; 0 skips the
 * section), BENCH_BULK_RUNS (downloads per row, default 3), BENCH_INSPECTOR=<port>
 * (opens workerd's inspector, for bench/profile.ts).
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { BUNDLE_BUDGET_GZIP_BYTES, buildForDeploy, measureBundle } from "./bundle-size.ts";
import { AGGREGATE_COUNT, PATIENT_ID, SEARCHSET_ENTRIES, SLOW_DELAY_MS, intakeNotificationJson, searchsetJson } from "./fixtures.ts";
import { startBulkServer } from "../test/peers/bulk-server.ts";
import { bulkEdgeBindings, measureBulkStream, type BulkRow } from "./bulk-stream.ts";
import { limitedEdgeOptions, measureOpenLoop, type OpenLoopResult } from "./open-loop.ts";
import { BACKOFF_BATCH, CONNECTION_BATCH, GAP_BATCH, MICRO_UPSTREAM } from "./micro/batches.ts";
import { autocannon, loadGenerator, type LoadGenerator, type LoadRun } from "./loadgen.ts";
import { startNginx, type Nginx } from "./nginx.ts";
import { benchCores, cpuSecondsOf, onStop, pin, spawnPinned, startBenchUpstream, stopAll, TASKSET } from "./processes.ts";
import { renderMarkdown, renderSvg, type DrainResult, type MicroResult, type Report, type RowResult, type TargetCheck } from "./report.ts";
import { median, summarize, type Sample } from "./stats.ts";
import { startReceiver, type Receiver } from "./receiver.ts";
import { BENCH_API_KEY, CHANNEL, CHANNEL_SECRET, OAUTH_SOURCE, SECOND_SOURCE, SLOW_SOURCE, SOURCE, TARGETS, type Target, type Via } from "./targets.ts";
import { BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, startTokenEndpoint } from "./token-endpoint.ts";
import { startWorkerd, type Workerd } from "./workerd.ts";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);
const OUT = join(BENCH_DIR, "out");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const HIGH = Number(process.env.BENCH_CONNECTIONS ?? 32);
/** Cycles of the paired phase: the rows each ratio target compares, alternated 1 s each. */
const PAIR_CYCLES = Number(process.env.BENCH_PAIR_CYCLES ?? 6);
/**
 * The rows behind the two ratio targets. They run again in tight alternation
 * after the shuffled blocks, so both sides of a ratio see the same machine
 * (this one drifts by tens of percent over tens of seconds), and each ratio is
 * the median of its per-cycle ratios.
 */
const PAIRED_GROUPS = [
  ["bare-patient", "floor-patient", "edge-patient"],
  ["bare-searchset", "edge-searchset-streamed", "floor-searchset-rewritten", "edge-searchset-rewritten"],
];
const TOKEN_LIFETIME = Number(process.env.BENCH_TOKEN_LIFETIME ?? 20);
/** The edge refreshes `min(60 s, 10%)` before expiry (token-response.ts). */
const TOKEN_REFRESH_EVERY = TOKEN_LIFETIME - Math.min(60, TOKEN_LIFETIME * 0.1);
/** How long the bench waits, after the intake row, for every channel target to have the last event. */
const DRAIN_TIMEOUT_MS = 60_000;
/** A safety net only: the bench is sized to finish in well under five minutes. */
const WATCHDOG_MS = 9 * 60_000;
/** The Bulk Data section's file (MiB; 0 skips it) and downloads per row. */
const BULK_MB = Number(process.env.BENCH_BULK_MB ?? 256);
const BULK_RUNS = Number(process.env.BENCH_BULK_RUNS ?? 3);

const started = Date.now();
const log = (msg: string) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${msg}`);

interface Env {
  upstream: string;
  workerd: Workerd;
  nginx: Nginx | undefined;
  proxyCore: number | undefined;
  /** The intake row's event numbers: one counter across its check, warm-up, runs and drain. */
  events: EventSequence;
}

/** Event numbers handed out (1, 2, 3, ...) and the ones the edge acknowledged with a 2xx. */
interface EventSequence {
  last: number;
  accepted: Set<number>;
}

const nextEvent = (events: EventSequence): number => ++events.last;

function baseUrl(env: Env, via: Via): string | undefined {
  switch (via) {
    case "direct":
      return env.upstream;
    case "nginx":
      return env.nginx?.url;
    case "bare-worker":
      return env.workerd.passthroughUrl;
    case "floor-worker":
      return env.workerd.floorUrl;
    case "edge":
      return env.workerd.edgeUrl;
  }
}

function proxyPids(env: Env, via: Via): number[] {
  switch (via) {
    case "direct":
      return [];
    case "nginx":
      return env.nginx?.pids() ?? [];
    default:
      return [env.workerd.pid];
  }
}

/** Busy and total ticks of one core, from /proc/stat. */
function coreTicks(core: number): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) return { busy: 0, total: 0 };
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - v[3]! - v[4]!, total };
}

/** Fetches a row once and checks its answer is the payload it should be. */
async function check(env: Env, target: Target): Promise<void> {
  const url = baseUrl(env, target.via)! + target.path;
  const sent = checkBody(env, target);
  const res = await fetch(url, { method: target.method ?? "GET", headers: target.headers ?? {}, ...(sent !== undefined ? { body: sent } : {}) });
  const body = await res.text();
  const fail = (why: string) => {
    throw new Error(`row "${target.label}" (${url}) ${why}; status ${res.status}, first bytes: ${body.slice(0, 300)}`);
  };
  if (res.status !== 200) fail("did not answer 200");
  if (target.payload === "patient" && !body.includes(`"id":"${PATIENT_ID}"`)) fail("is not the bench Patient");
  if (target.payload === "searchset") {
    if ((body.match(/"fullUrl"/g) ?? []).length !== SEARCHSET_ENTRIES) fail(`is not the ${SEARCHSET_ENTRIES}-entry searchset`);
    const edgeBase = `${baseUrl(env, target.via)}${SOURCE}/Patient/`;
    if (target.rewritten && (!body.includes(edgeBase) || body.includes(env.upstream))) fail("did not have its URLs rewritten to the edge");
    if (!target.rewritten && !body.includes(`${env.upstream}fhir/R4/Patient/`)) fail("changed the upstream's URLs");
  }
  if (target.payload === "aggregate") {
    const entries = (body.match(/"fullUrl"/g) ?? []).length;
    if (entries !== AGGREGATE_COUNT) fail(`is not a ${AGGREGATE_COUNT}-entry searchset (${entries} entries)`);
    if (body.includes('"mode":"outcome"')) fail("reports a failed source");
    if (target.rewritten && body.includes(env.upstream)) fail("did not have its URLs rewritten to the edge");
  }
  if (target.payload === "notification" && !body.includes('"OperationOutcome"')) fail("did not acknowledge the notification");
}

/** The row's body for its check: a numbered row's takes the next event number, and counts as acknowledged. */
function checkBody(env: Env, target: Target): string | undefined {
  if (!target.numberedBody) return target.body;
  const n = nextEvent(env.events);
  env.events.accepted.add(n);
  return target.numberedBody(n);
}

/** A load run of `target` (its method, body and headers). */
function loadRun(env: Env, target: Target, connections: number, seconds: number): LoadRun {
  const make = target.numberedBody;
  const numbered: LoadRun["numbered"] = make
    ? {
        next: () => {
          const n = nextEvent(env.events);
          return { body: make(n), tag: n };
        },
        answered: (n, status) => {
          if (status >= 200 && status < 300) env.events.accepted.add(n);
        },
      }
    : undefined;
  return { url: baseUrl(env, target.via)! + target.path, headers: target.headers ?? {}, connections, seconds, method: target.method, body: target.body, numbered };
}

/** Seconds per run of a row: the bench's, or the row's own when shorter. */
const secondsOf = (target: Target): number => Math.min(SECONDS, target.seconds ?? SECONDS);

async function measure(env: Env, generator: LoadGenerator, target: Target, connections: number, seconds: number): Promise<Sample> {
  const run = loadRun(env, target, connections, seconds);
  const pids = proxyPids(env, target.via);
  const cpu0 = cpuSecondsOf(pids);
  const core0 = env.proxyCore === undefined ? undefined : coreTicks(env.proxyCore);
  const result = await generator.run(run);
  const cpu1 = cpuSecondsOf(pids);
  const core1 = env.proxyCore === undefined ? undefined : coreTicks(env.proxyCore);
  let foreignLoad: number | undefined;
  if (core0 && core1 && core1.total > core0.total) {
    const ticksPerSecond = (core1.total - core0.total) / result.seconds;
    foreignLoad = Math.max(0, (core1.busy - core0.busy) / ticksPerSecond - (cpu1 - cpu0)) / result.seconds;
  }
  return {
    ...result,
    proxyCpuMsPerRequest: pids.length > 0 && result.requests > 0 ? ((cpu1 - cpu0) * 1000) / result.requests : undefined,
    foreignLoad,
  };
}


/**
 * After a channel's load: sends one more notification (the next event number, so the
 * strict channel delivers it after every event before it) and waits, bounded, until every
 * target has it; then counts, per target, the acknowledged events it never received.
 */
async function drain(env: Env, target: Target, receiver: Receiver): Promise<DrainResult> {
  const t0 = Date.now();
  const atLoadEnd = receiver.counts();
  const last = nextEvent(env.events);
  receiver.watch(last);
  const res = await fetch(baseUrl(env, target.via)! + target.path, { method: "POST", headers: target.headers ?? {}, body: target.numberedBody!(last) });
  await res.arrayBuffer();
  if (res.ok) env.events.accepted.add(last);
  while (Date.now() - t0 < DRAIN_TIMEOUT_MS && receiver.names.some((n) => receiver.markerAt(n) === undefined)) await new Promise((r) => setTimeout(r, 20));
  const all = receiver.names.every((n) => receiver.markerAt(n) !== undefined);
  const lastEventMs = all ? Math.max(...receiver.names.map((n) => receiver.markerAt(n)!)) - t0 : undefined;
  const now = receiver.counts();
  const atLast = Object.fromEntries(receiver.names.map((n) => [n, receiver.countAtMarker(n) ?? now[n]!]));
  const accepted = env.events.accepted.size;
  const lostEvents = Object.fromEntries(receiver.names.map((n) => [n, [...env.events.accepted].filter((e) => !receiver.events(n).has(e)).sort((a, b) => a - b)]));
  const missing = Object.fromEntries(receiver.names.map((n) => [n, lostEvents[n]!.length]));
  const complete = all && Object.values(missing).every((m) => m === 0);
  const per = receiver.names.map((n) => `${n}: ${atLast[n]}`).join(", ");
  const lost = receiver.names.map((n) => `${n} ${missing[n]}${missing[n]! > 0 ? ` (events ${lostEvents[n]!.slice(0, 10).join(", ")}${missing[n]! > 10 ? ", ..." : ""})` : ""}`).join(", ");
  const summary =
    (all
      ? `${accepted} notifications acknowledged; the last target had the last event ${(lastEventMs! / 1000).toFixed(2)} s after the load ended (deliveries then ${per})`
      : `${accepted} notifications acknowledged; after ${DRAIN_TIMEOUT_MS / 1000} s not every target had the last event (deliveries ${per})`) +
    (complete ? "; every acknowledged event reached every target" : `; acknowledged events a target never received: ${lost}`);
  return { channel: target.channel!, sent: env.events.last, accepted, atLoadEnd, atLast, lastEventMs, missing, complete, summary };
}

/** Reads what bench/micro/hot-paths.bench.ts wrote; `period` is ms per sample (a batch for the cheap ones). */
function microResults(): MicroResult[] {
  const dir = join(OUT, "micro");
  const read = (name: string) => JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as { period: number };
  // The Bundle the micro-benchmark rewrites (its base is the same length as the one it uses).
  const bundleBytes = Buffer.byteLength(searchsetJson(MICRO_UPSTREAM));
  return [
    { name: "rewrite-bundle", label: "rewrite a 200 KB searchset (UTF-8 decode, rewrite, encode)", msPerOp: read("rewrite-bundle").period, bytes: bundleBytes },
    { name: "rewrite-no-match", label: "the same steps on a 200 KB body without the upstream base", msPerOp: read("rewrite-no-match").period, bytes: bundleBytes },
    { name: "decode-encode", label: "floor: UTF-8 decode and encode of the 200 KB, no rewrite", msPerOp: read("decode-encode").period, bytes: bundleBytes },
    { name: "json-roundtrip", label: "for comparison: JSON.parse + JSON.stringify of the same bytes", msPerOp: read("json-roundtrip").period, bytes: bundleBytes },
    { name: "connection-string", label: "parse + resolve a connection string (client credentials, header, retry params)", msPerOp: read("connection-string").period / CONNECTION_BATCH },
    { name: "backoff", label: "compute a backoff (backoffDelay / retryDelay with Retry-After)", msPerOp: read("backoff").period / BACKOFF_BATCH },
    { name: "sequence-gap", label: "decide a sequence gap (classifyEvents of a notification's event numbers, countGap)", msPerOp: read("sequence-gap").period / GAP_BATCH },
  ];
}

function runMicro(core: number | undefined): Promise<void> {
  const dir = join(OUT, "micro");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const require = createRequire(import.meta.url);
  const vitest = join(dirname(require.resolve("vitest/package.json")), "vitest.mjs");
  return new Promise((resolve, reject) => {
    const child = spawnPinned(process.execPath, [vitest, "bench", "--run", "--config", join(BENCH_DIR, "vitest.config.ts")], core, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += String(c)));
    child.stderr!.on("data", (c: Buffer) => (out += String(c)));
    const guard = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("exit", (code) => {
      clearTimeout(guard);
      if (code === 0) resolve();
      else reject(new Error(`vitest bench failed (${code}):\n${out.slice(-4000)}`));
    });
  });
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "?";
  }
}

async function main(): Promise<void> {
  const { pinned, generatorCore, proxyCore } = benchCores();
  pin(process.pid, generatorCore);
  const loadAtStart = os.loadavg();
  mkdirSync(OUT, { recursive: true });

  log("building the edge as for deploy (wrangler deploy --dry-run --outdir bench/out/edge)");
  const edgeDir = join(OUT, "edge");
  rmSync(edgeDir, { recursive: true, force: true });
  await buildForDeploy(edgeDir, ROOT);
  const bundle = measureBundle(edgeDir);

  const generator = await loadGenerator(generatorCore);
  // Rows with a body per request (the intake row's event numbers) need autocannon.
  const numberedGenerator = generator.name === "autocannon" ? generator : await autocannon();
  const generatorFor = (target: Target) => (target.numberedBody ? numberedGenerator : generator);
  log(`load generator: ${generator.version}; ${pinned ? `generator, upstream and harness on core ${generatorCore}, proxies on core ${proxyCore}` : "not pinned (no taskset or one core)"}`);

  let micro: MicroResult[] = [];
  if (process.env.BENCH_SKIP_MICRO !== "1") {
    log("micro-benchmarks in workerd (vitest bench)");
    await runMicro(proxyCore);
    micro = microResults();
  }

  log("starting the upstream, the token endpoint, workerd and nginx");
  const { port: upstreamPort } = await startBenchUpstream(join(BENCH_DIR, "upstream.ts"), generatorCore);
  const upstream = `http://127.0.0.1:${upstreamPort}/`;

  const token = await startTokenEndpoint(TOKEN_LIFETIME);
  onStop(() => token.close());

  // The channel's two targets: a node:http receiver in this process counting deliveries.
  const receiver = await startReceiver(["a", "b"]);
  onStop(() => receiver.close());

  // The Bulk Data server (the tests' peer) for the Bulk Data section, in this process; it accepts any token.
  const bulk = await startBulkServer({ expectAuthorization: () => true });
  onStop(() => bulk.close());

  const wrangler = unstable_readConfig({ config: join(ROOT, "wrangler.toml") });
  const upstreamBase = `127.0.0.1:${upstreamPort}/fhir/R4`;
  const channels = {
    [CHANNEL]: {
      source: SOURCE,
      topic: "http://hl7.org/SubscriptionTopic/admission",
      secret: "env:BENCH_CHANNEL_SECRET",
      payload: "id-only",
      // Strict sequencing (the default), as a real source's counters: every POST carries the
      // next event number; concurrent POSTs arrive out of order and are held, then released.
      sequencing: "strict",
      // An event whose POST the load generator cut off at a run's end is a gap: ask $events
      // (the bench upstream has none) after 1 s instead of 5, then deliver what follows.
      gapGracePeriod: 1,
      // Never drop an undelivered notification during the bench.
      retentionEvents: 1_000_000,
      targets: receiver.urls.map((url) => ({ url })),
    },
  };
  const workerd = await startWorkerd({
    edgeDir,
    configPath: join(OUT, "workerd.capnp"),
    storageDir: join(OUT, "do-storage"),
    passthroughScript: join(BENCH_DIR, "passthrough-worker.js"),
    kvScript: join(BENCH_DIR, "kv-worker.js"),
    floor: { script: join(BENCH_DIR, "floor-worker.js"), bindings: { API_KEY: BENCH_API_KEY, UPSTREAM_BASE: `http://${upstreamBase}` } },
    wrangler,
    edgeBindings: {
      PROXY_AUTH: "api-key",
      PROXY_API_KEYS: `bench:${BENCH_API_KEY}`,
      ALLOW_INSECURE_HTTP: "true",
      [`FHIR_SOURCE_${SOURCE.toUpperCase()}`]: `fhir+http://${upstreamBase}`,
      [`FHIR_SOURCE_${SECOND_SOURCE.toUpperCase().replaceAll("-", "_")}`]: `fhir+http://${upstreamBase}`,
      [`FHIR_SOURCE_${SLOW_SOURCE.toUpperCase().replaceAll("-", "_")}`]: `fhir+http://127.0.0.1:${upstreamPort}/slow/fhir/R4`,
      FHIR_CHANNELS: JSON.stringify(channels),
      BENCH_CHANNEL_SECRET: CHANNEL_SECRET,
      [`FHIR_SOURCE_${OAUTH_SOURCE.toUpperCase().replaceAll("-", "_")}`]:
        `fhir+http://127.0.0.1:${upstreamPort}/oauth/fhir/R4?client_id=${BENCH_CLIENT_ID}&client_secret=env:BENCH_CLIENT_SECRET&token_url=${token.url}`,
      BENCH_CLIENT_SECRET,
      TOKEN_CACHE_KEY: "bench-token-cache-key-not-a-secret",
      ...bulkEdgeBindings(bulk),
    },
    upstreamOrigin: `http://127.0.0.1:${upstreamPort}`,
    core: proxyCore,
    // The open-loop section's second edge, rate limiting on, and the Bulk Data section's bare Worker.
    limitedEdge: limitedEdgeOptions(join(BENCH_DIR, "ratelimit-worker.js")),
    bulkOrigin: bulk.origin,
  });
  const nginx = await startNginx(join(OUT, "nginx"), upstreamPort, proxyCore);
  const env: Env = { upstream, workerd, nginx, proxyCore, events: { last: 0, accepted: new Set() } };

  // BENCH_ROWS=id,id runs a subset (while profiling a fix); the report then lists only those.
  const only = process.env.BENCH_ROWS ? new Set(process.env.BENCH_ROWS.split(",")) : undefined;
  const rows: RowResult[] = TARGETS.filter((t) => !only || only.has(t.id)).map((target) => ({
    target,
    ...(target.via === "nginx" && !nginx ? { skipped: "nginx is not installed (apt-get install -y nginx)" } : {}),
  }));
  const active = rows.filter((r) => !r.skipped).map((r) => r.target);

  log(`checking ${active.length} rows answer the right payload`);
  let oauthFirst: number | undefined;
  for (const target of active) {
    if (target.oauth) oauthFirst ??= Date.now();
    await check(env, target);
  }
  const shared = active.filter((t) => !t.isolated);
  const isolated = active.filter((t) => t.isolated);
  log(`warming up every row (1 s each)${isolated.length ? `, but ${isolated.map((t) => t.id).join(", ")} (warmed up in its own phase)` : ""}`);
  for (const target of shared) await generatorFor(target).run(loadRun(env, target, HIGH, 1));

  const samples = new Map<string, { latency: Sample[]; throughput: Sample[] }>(active.map((t) => [t.id, { latency: [], throughput: [] }]));
  let oauthLast = oauthFirst;
  const total = REPS * 2 * active.length;
  let done = 0;
  const runBlocks = async (group: Target[], seedOffset: number) => {
    for (let rep = 0; rep < REPS; rep++) {
      for (const connections of [1, HIGH]) {
        // A new order for every block (seeded, so runs repeat): no row always runs
        // first, or right after the same neighbour (rows share workerd's thread).
        const order = shuffled(group, seedOffset + rep * 2 + (connections === 1 ? 0 : 1) + 1);
        for (const target of order) {
          const sample = await measure(env, generatorFor(target), target, connections, secondsOf(target));
          if (target.oauth) oauthLast = Date.now();
          samples.get(target.id)![connections === 1 ? "latency" : "throughput"].push(sample);
          done++;
        }
        log(`repetition ${rep + 1}/${REPS}, ${connections} connection${connections === 1 ? "" : "s"}: ${done}/${total} runs done`);
      }
    }
  };
  await runBlocks(shared, 0);

  // The ratio targets' rows, alternated in tight cycles at HIGH connections (1 s each).
  const pairedRps = new Map<string, number[]>();
  const groups = PAIRED_GROUPS.map((ids) => ids.filter((id) => shared.some((t) => t.id === id))).filter((ids) => ids.length > 1);
  if (groups.length > 0 && PAIR_CYCLES > 0) {
    log(`paired phase: ${groups.map((g) => g.join(" / ")).join("; ")}, ${PAIR_CYCLES} cycles of 1 s each`);
    for (const ids of groups) {
      for (let cycle = 0; cycle < PAIR_CYCLES; cycle++) {
        // Rotate who goes first, so no row always follows the same one.
        for (let k = 0; k < ids.length; k++) {
          const id = ids[(cycle + k) % ids.length]!;
          const pairTarget = shared.find((t) => t.id === id)!;
          const sample = await measure(env, generatorFor(pairTarget), pairTarget, HIGH, 1);
          if (sample.errors + sample.badStatus > 0 || sample.requests === 0) throw new Error(`paired phase: ${id} answered ${sample.requests} requests, with ${sample.errors} errors and ${sample.badStatus} non-2xx answers`);
          pairedRps.set(id, [...(pairedRps.get(id) ?? []), sample.rps]);
        }
      }
    }
  }
  /** Median over the paired cycles of a's req/s over b's; undefined when either was not run. */
  const pairedRatio = (a: string, b: string): number | undefined => {
    const ra = pairedRps.get(a);
    const rb = pairedRps.get(b);
    return ra && rb && ra.length === rb.length ? median(ra.map((x, i) => x / rb[i]!)) : undefined;
  };

  // Open loop and rate limiting (issue 14), then a large Bulk Data file (issue 12): each alone, before the intake leaves work behind.
  let openLoop: OpenLoopResult | undefined;
  const bareSamples = samples.get("bare-patient")?.throughput ?? [];
  if (bareSamples.length > 0) {
    openLoop = await measureOpenLoop({ workerd, generator, bareRps: median(bareSamples.map((x) => x.rps)), connections: HIGH, seconds: SECONDS, reps: REPS, log });
  }
  let bulkRows: BulkRow[] | undefined;
  let bulkSection: Report["sections"][number] | undefined;
  if (BULK_MB > 0 && BULK_RUNS > 0) {
    ({ rows: bulkRows, section: bulkSection } = await measureBulkStream({ workerd, bulk, mb: BULK_MB, runs: BULK_RUNS, log }));
  }

  // Rows that leave work behind (the relay's deliveries) run last, alone, then drain.
  const drains: DrainResult[] = [];
  if (isolated.length > 0) {
    log(`rows that leave work behind, alone: ${isolated.map((t) => t.id).join(", ")} (1 s warm-up each)`);
    for (const target of isolated) await generatorFor(target).run(loadRun(env, target, HIGH, 1));
    await runBlocks(isolated, 100);
    for (const channel of new Set(isolated.flatMap((t) => (t.channel ? [t.channel] : [])))) {
      const target = isolated.find((t) => t.channel === channel)!;
      drains.push(await drain(env, target, receiver));
      log(`channel ${channel}: ${drains.at(-1)!.summary}`);
    }
  }
  for (const row of rows) {
    const s = samples.get(row.target.id);
    if (!s) continue;
    row.latency = summarize(s.latency);
    row.throughput = summarize(s.throughput);
  }

  // Targets from the issue, on the high-concurrency medians.
  const row = (id: string) => rows.find((r) => r.target.id === id && !r.skipped && r.throughput);
  const get = (id: string) => row(id)?.throughput;
  const edge = get("edge-patient");
  const bare = get("bare-patient");
  const streamed = get("edge-searchset-streamed");
  const rewritten = get("edge-searchset-rewritten");
  const bare200 = get("bare-searchset");
  const floorRewritten = get("floor-searchset-rewritten");
  const targets: TargetCheck[] = [];
  const pairedNote = `median of ${PAIR_CYCLES} alternating 1 s cycles at ${HIGH} connections`;
  if (edge && bare) {
    const paired = pairedRatio("edge-patient", "bare-patient");
    const r = paired ?? edge.rps / bare.rps;
    const floorRatio = pairedRatio("floor-patient", "bare-patient");
    const edgeOverFloor = pairedRatio("edge-patient", "floor-patient");
    const vsFloor = floorRatio !== undefined && edgeOverFloor !== undefined ? `; the floor (a hand-written Worker doing only the edge's duties) ${floorRatio.toFixed(2)}x, the edge ${edgeOverFloor.toFixed(2)}x the floor` : "";
    const how = paired !== undefined ? ` (${pairedNote}; the tables' medians: ${(edge.rps / bare.rps).toFixed(2)}x)` : ` (${Math.round(edge.rps)} vs ${Math.round(bare.rps)} req/s)`;
    targets.push({ goal: "edge ≥ 0.9x the bare pass-through Worker's req/s (2 KB Patient)", measured: `${r.toFixed(2)}x${how}${vsFloor}`, met: r >= 0.9 });
  }
  if (streamed && rewritten) {
    const paired = pairedRatio("edge-searchset-streamed", "edge-searchset-rewritten");
    const r = paired ?? streamed.rps / rewritten.rps;
    const vsBare = pairedRatio("bare-searchset", "edge-searchset-rewritten") ?? (bare200 ? bare200.rps / rewritten.rps : undefined);
    const floorVsBare = pairedRatio("bare-searchset", "floor-searchset-rewritten") ?? (floorRewritten && bare200 ? bare200.rps / floorRewritten.rps : undefined);
    const how = paired !== undefined ? ` (${pairedNote}; the tables' medians: ${(streamed.rps / rewritten.rps).toFixed(2)}x)` : ` (${Math.round(rewritten.rps)} vs ${Math.round(streamed.rps)} req/s)`;
    targets.push({
      goal: "rewriting the 200 KB Bundle costs ≤ 1.25x its pass-through (time per request)",
      measured:
        `${r.toFixed(2)}x the edge streaming the same bytes${how}` +
        `${vsBare !== undefined ? `; ${vsBare.toFixed(2)}x the bare Worker's` : ""}` +
        `${floorVsBare !== undefined ? `; the floor's text rewrite costs ${floorVsBare.toFixed(2)}x the bare Worker's streaming` : ""}`,
      met: r <= 1.25,
    });
  }
  // Proxied requests only: an aggregate is several requests, and intake stores and delivers.
  const edgeRows = rows.filter((r) => r.target.via === "edge" && (r.target.payload === "patient" || r.target.payload === "searchset") && r.throughput?.proxyCpuMsPerRequest !== undefined);
  if (edgeRows.length > 0) {
    const worst = Math.max(...edgeRows.map((r) => r.throughput!.proxyCpuMsPerRequest!));
    const parts = edgeRows.map((r) => `${r.target.label}, ${r.target.payload === "patient" ? "2 KB" : "200 KB"}: ${r.throughput!.proxyCpuMsPerRequest!.toFixed(3)} ms`);
    const ours = edge && bare && edge.proxyCpuMsPerRequest !== undefined && bare.proxyCpuMsPerRequest !== undefined ? `; of which above the bare Worker (2 KB): ${(edge.proxyCpuMsPerRequest - bare.proxyCpuMsPerRequest).toFixed(3)} ms` : "";
    targets.push({ goal: "< 1 ms CPU per proxied request (whole workerd process, see method)", measured: parts.join("; ") + ours, met: worst < 1 });
  }
  const oauthRow = rows.find((r) => r.target.oauth && !r.skipped);
  const tokenSpan = oauthFirst !== undefined && oauthLast !== undefined ? (oauthLast - oauthFirst) / 1000 : 0;
  const needed = Math.floor(tokenSpan / TOKEN_REFRESH_EVERY) + 1;
  const oauthRequests = (oauthRow?.throughput?.requests ?? 0) + (oauthRow?.latency?.requests ?? 0);
  if (oauthRow) {
    targets.push({
      goal: "≤ 1 token-endpoint call per token lifetime",
      measured: `${token.calls.length} calls for ${oauthRequests.toLocaleString("en-US")} measured requests over ${Math.round(tokenSpan)} s of ${TOKEN_LIFETIME} s tokens (one per ${TOKEN_REFRESH_EVERY} s refresh window: at most ${needed})`,
      met: token.calls.length >= 1 && token.calls.length <= needed && token.refused === 0,
    });
  }

  // Aggregation and intake, in words (their rows are in the tables too).
  const sections: Report["sections"] = [];
  const agg = row("edge-aggregate");
  if (agg) {
    const slowDirect = row("direct-slow");
    const slowEdge = row("edge-slow");
    const vs = (r: RowResult | undefined, what: string) =>
      r
        ? `${what}: 1 connection p50 ${r.latency!.p50Ms.toFixed(1)} ms (aggregate +${(agg.latency!.p50Ms - r.latency!.p50Ms).toFixed(1)} ms), p99 ${r.latency!.p99Ms.toFixed(1)} ms; ${HIGH} connections ${Math.round(r.throughput!.rps)} req/s (aggregate ${(agg.throughput!.rps / r.throughput!.rps).toFixed(2)}x), p50 ${r.throughput!.p50Ms.toFixed(1)} ms, p99 ${r.throughput!.p99Ms.toFixed(1)} ms`
        : `${what}: not run`;
    sections.push({
      title: `Aggregation: 3 sources, one ${SLOW_DELAY_MS} ms late`,
      lines: [
        `\`GET /aggregate/Patient?_count=${AGGREGATE_COUNT}&sources=${SOURCE},${SECOND_SOURCE},${SLOW_SOURCE}\`: three edge sources on the same upstream, \`${SLOW_SOURCE}\` under its \`/slow\` path, which answers ${SLOW_DELAY_MS} ms late (a timer; the upstream keeps serving meanwhile). Each source answers a ${AGGREGATE_COUNT}-entry searchset; the edge asks them in parallel and merges one ${AGGREGATE_COUNT}-match page.`,
        `Aggregate: 1 connection p50 ${agg.latency!.p50Ms.toFixed(1)} ms, p99 ${agg.latency!.p99Ms.toFixed(1)} ms; ${HIGH} connections ${Math.round(agg.throughput!.rps)} req/s, p50 ${agg.throughput!.p50Ms.toFixed(1)} ms, p99 ${agg.throughput!.p99Ms.toFixed(1)} ms.`,
        vs(slowDirect, "The slowest source alone, direct"),
        vs(slowEdge, "The slowest source alone, through the edge"),
        "The rows' \"× direct\" is against the slowest source alone, direct: a fan-out cannot answer before its slowest source.",
      ],
    });
  }
  const intake = row("edge-intake");
  if (intake) {
    const cpu = intake.throughput!.proxyCpuMsPerRequest;
    sections.push({
      title: "Subscription intake: one strict channel, two targets",
      lines: [
        `\`POST /webhooks/${CHANNEL}\` with the channel secret (X-Api-Key) and an R5 id-only event-notification Bundle (${Buffer.byteLength(intake.target.body ?? "")} bytes) whose event number is the next one every time (1, 2, 3, ... across the check, warm-up and every run; ${numberedGenerator.version} makes each request's body). The channel has \`sequencing: "strict"\`, as a source's counters: concurrent POSTs arrive out of order and are held until the events before them arrive; each is stored (SQLite in the channel's Durable Object, on a fresh local directory here) before its 200 and delivered to both targets in event order (a node:http receiver in the bench process, answering 200 at once, noting each event number).`,
        `Intake: **${Math.round(intake.throughput!.rps)} notifications/s** at ${HIGH} connections (p50 ${intake.throughput!.p50Ms.toFixed(2)} ms, p99 ${intake.throughput!.p99Ms.toFixed(2)} ms); ${Math.round(intake.latency!.rps)}/s at 1 connection (p50 ${intake.latency!.p50Ms.toFixed(2)} ms, p99 ${intake.latency!.p99Ms.toFixed(2)} ms)${cpu !== undefined ? `; **${cpu.toFixed(3)} ms CPU per notification** (the whole workerd process, delivery to both targets included)` : ""}. Delivery runs in the same workerd thread meanwhile, so these rates include it; the row runs alone, after all the others, so its deliveries disturb no other row.`,
        ...drains.map(
          (d) =>
            `Delivery: after the last run, one more notification (event ${d.sent}, the last number) was posted; ${d.lastEventMs !== undefined ? `**the last target had it ${(d.lastEventMs / 1000).toFixed(2)} s after the load ended**` : `**not every target had it after ${DRAIN_TIMEOUT_MS / 1000} s**`}. ` +
            `${d.accepted.toLocaleString("en-US")} of the ${d.sent.toLocaleString("en-US")} event numbers sent were acknowledged with a 2xx (the rest were cut off in flight at a run's end); ` +
            (d.complete
              ? "**every acknowledged event reached every target**"
              : `**not every acknowledged event reached every target**: missing ${Object.entries(d.missing).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ")}`) +
            `; deliveries per target when the load ended: ${Object.entries(d.atLoadEnd).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ")}; when it had the last event: ${Object.entries(d.atLast).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ")}.`,
        ),
      ],
    });
    for (const d of drains) {
      targets.push({
        goal: `every notification acknowledged with 2xx reaches every target (channel ${d.channel}, strict)`,
        measured: d.complete
          ? `${d.accepted.toLocaleString("en-US")} acknowledged, all at both targets; the last ${(d.lastEventMs! / 1000).toFixed(2)} s after the load ended`
          : `missing per target: ${Object.entries(d.missing).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ")}${d.lastEventMs === undefined ? `; the last event had not reached every target after ${DRAIN_TIMEOUT_MS / 1000} s` : ""}`,
        met: d.complete,
      });
    }
  }

  if (openLoop) sections.push(...openLoop.sections);
  if (bulkSection) sections.push(bulkSection);

  const one = active.find((t) => t.via === "edge")!;
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "?";
  const osName = /PRETTY_NAME="([^"]*)"/.exec(safeRead("/etc/os-release"))?.[1] ?? os.type();
  const report: Report = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    durationSeconds: (Date.now() - started) / 1000,
    machine: [
      `${osName}, Linux ${os.release()}, ${os.arch()}`,
      `${os.cpus().length} cores (${cpuModel}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB memory; load average (1, 5, 15 min) at start ${loadAtStart.map((l) => l.toFixed(2)).join(" ")}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
    ],
    versions: [
      `Node ${process.version}; workerd ${workerd.version}; wrangler ${packageVersion("wrangler")}; hono ${packageVersion("hono")}; jose ${packageVersion("jose")}`,
      `load generator: ${generator.version}; nginx: ${nginx ? nginx.version : "not installed (row skipped)"}`,
    ],
    method: [
      `Processes: ${pinned ? `taskset pins the load generator (one thread), the fixed upstream (node:http) and this harness to core ${generatorCore}, and every proxy (workerd with the edge, the bare Worker and the floor Worker; nginx with one worker process) to core ${proxyCore}, so a proxy's cost shows as its own core's time and never steals the generator's` : "not pinned (taskset missing or one core): every process shares every core"}.`,
      `Each row runs ${REPS} times at 1 connection (latency) and ${REPS} times at ${HIGH} connections (throughput), ${SECONDS} s per run (or a row's own shorter time, see notes), after a 1 s warm-up; every block of runs takes the rows in a new shuffled order (seeded), so machine drift and the row before hit all rows alike. The tables show medians.`,
      `The two ratio targets are measured once more, paired: after the shuffled blocks, the rows they compare (${PAIRED_GROUPS.map((g) => g.join(", ")).join("; and ")}) run in turn at ${HIGH} connections for 1 s each, ${PAIR_CYCLES} cycles, and each ratio is the median of its per-cycle ratios, so both sides of a ratio see the same moment of this machine. The tables show the shuffled blocks' medians.`,
      "The edge is `wrangler deploy --dry-run --outdir bench/out/edge` run by workerd directly from a generated config (bench/out/workerd.capnp): its bindings as in wrangler.toml (KV served by a small in-memory KV Worker, the TokenCoordinator and ChannelObject Durable Objects SQLite-backed in a fresh bench/out/do-storage (workerd's in-memory storage has no SQL API), ALLOW_INSECURE_HTTP=true for the http upstream and channel targets), the bare pass-through Worker (bench/passthrough-worker.js), the floor Worker (bench/floor-worker.js: hand-written, no framework, doing only the edge's per-request duties on a read or search: request id, constant-time API key, path check, header rules both ways, per-attempt timeout, text rewrite of a search's body, one log line), all in the same workerd process. Not `wrangler dev` or Miniflare: both add Workers of their own to every request (Miniflare's outbound interceptor sits on every fetch).",
      `After the paired phase, each alone in the same workerd: the open-loop and rate-limiting sections (${REPS} rounds of ${SECONDS} s per row; the open loop's rate is half the bare Worker's req/s from the tables, so the bare Worker is not run closed-loop again) and the Bulk Data section (${BULK_RUNS} downloads of ${BULK_MB} MiB per row after one of each to check them); then the intake row. These sections are trimmed to the bench's run length (the separate scripts they replace ran 3 s rounds and their own closed-loop bare runs) to keep the whole bench within about 6 minutes on this 2-core machine.`,
      "Clients authenticate to the edge (and the floor Worker) with an API key (X-Api-Key); the edge logs one JSON line per request (ACCESS_LOG=all, the default; workerd's stdout, discarded).",
      "CPU per request: the user+system CPU time of the proxy's process(es) from /proc/<pid>/stat over a run, divided by the requests of that run. For workerd that is the whole runtime (HTTP parsing both ways, the socket to the upstream, JavaScript), more than Cloudflare bills (JavaScript CPU only), so it is an upper bound; the bare Worker's figure is the runtime's share.",
      `"Other load on proxy core": the proxy core's busy time from /proc/stat not spent by the proxy, as a share of the run: how much this shared machine disturbed that run.`,
      `Token row: the token endpoint (node:http on loopback, client_credentials) issues ${TOKEN_LIFETIME} s tokens, so the bench spans several token lifetimes; the edge refreshes ${TOKEN_LIFETIME - TOKEN_REFRESH_EVERY} s before expiry (min(60 s, 10%)).`,
    ],
    commands: [
      "npx wrangler deploy --dry-run --outdir bench/out/edge",
      `${TASKSET && proxyCore !== undefined ? `taskset -c ${proxyCore} ` : ""}workerd serve bench/out/workerd.capnp --control-fd=3`,
      ...(nginx ? [`${TASKSET && proxyCore !== undefined ? `taskset -c ${proxyCore} ` : ""}nginx -p bench/out/nginx -c bench/out/nginx/nginx.conf`] : []),
      generator.describe(loadRun(env, one, 1, SECONDS)),
      generator.describe(loadRun(env, one, HIGH, SECONDS)),
      ...(intake ? [generatorFor(intake.target).describe(loadRun(env, intake.target, HIGH, secondsOf(intake.target)))] : []),
      "npx vitest bench --run --config bench/vitest.config.ts",
    ],
    highConcurrency: HIGH,
    rows,
    sections,
    targets,
    token: !oauthRow ? ["The token row was not run (BENCH_ROWS)."] : [
      `${token.calls.length} token-endpoint calls (${token.refused} refused) while the token row served ${oauthRequests.toLocaleString("en-US")} measured requests (plus warm-up), first to last request ${Math.round(tokenSpan)} s apart.`,
      `Token lifetime ${TOKEN_LIFETIME} s, refreshed after ${TOKEN_REFRESH_EVERY} s: at most ${needed} calls are needed over that span. The ${HIGH} concurrent requests that find the token due each ask the source's TokenCoordinator (a Durable Object), which makes one token-endpoint call for all of them.`,
      `Calls at: ${token.calls.map((t) => `${((t - (oauthFirst ?? t)) / 1000).toFixed(1)} s`).join(", ")} after the first token request.`,
    ],
    micro,
    bundle: { ...bundle, budgetBytes: BUNDLE_BUDGET_GZIP_BYTES },
    notes: [
      "Local workerd is not Cloudflare's network: no TLS, no distance to the client or the upstream, one isolate on one core. The ratios between rows are the result; absolute req/s say little about production.",
      "This machine has 2 cores, shared by the load generator, the upstream and the proxies (and by whatever else runs on it: see the \"other load\" column); when it is busy, spread between repetitions grows.",
      "nginx only forwards: it does not rewrite the upstream's URLs in the 200 KB Bundle (the edge does), so compare the rewriting row with the edge streaming the same bytes.",
      `Runs are ${SECONDS} s (the intake row's 1 s, bench/targets.ts) to keep the bench under five minutes; p99 at 1 connection rests on a few thousand samples per row, and the req/s range shows how far repetitions spread on this shared machine.`,
      "Finding where the time goes: `node bench/profile.ts` samples a V8 CPU profile of the edge in workerd while wrk drives one path; `node bench/compare-builds.ts <a> <b>` compares the CPU per request of two dry-run builds, alternating.",
      ...(generator.name === "autocannon"
        ? ["The load generator is autocannon (a devDependency, installed by `npm ci`), running in the bench's own process; it reports latencies in whole milliseconds. With wrk on PATH (apt-get install -y wrk) the bench uses wrk instead (finer latencies, less CPU on the generator's core); BENCH_LOADGEN=wrk|autocannon chooses."]
        : ["The intake row sends a new body per request, which wrk cannot: it runs with autocannon (a devDependency) while the other rows use wrk."]),
    ],
  };
  writeFileSync(join(BENCH_DIR, "results.md"), renderMarkdown(report));
  writeFileSync(join(BENCH_DIR, "results.svg"), renderSvg(report));
  log("wrote bench/results.md and bench/results.svg");
  for (const row of rows) {
    const t = row.throughput;
    const l = row.latency;
    console.log(
      `  ${(row.target.label + ", " + row.target.payload).padEnd(52)} ${row.skipped ? `skipped: ${row.skipped}` : `${Math.round(t!.rps).toString().padStart(6)} req/s  p50 ${t!.p50Ms.toFixed(2)} ms  p99 ${t!.p99Ms.toFixed(2)} ms  | 1 conn: p50 ${l!.p50Ms.toFixed(2)} ms`}`,
    );
  }
  for (const t of targets) console.log(`  ${t.met ? "met " : "MISS"} ${t.goal}: ${t.measured}`);
  if (openLoop) {
    for (const r of openLoop.open) console.log(`  open loop ${openLoop.rate} req/s, ${r.label}: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms (${Math.round(r.rps)} req/s answered)`);
    for (const r of openLoop.limiting) console.log(`  ${r.label}: ${Math.round(r.rps)} req/s, ${r.cpuMsPerRequest.toFixed(3)} ms CPU per request`);
  }
  for (const r of bulkRows ?? []) console.log(`  Bulk Data ${BULK_MB} MiB, ${r.label}: ${r.mbPerSecond.toFixed(0)} MB/s, ${r.cpuMsPerMb.toFixed(2)} ms CPU per MB`);
  const broken = rows.filter((r) => (r.throughput?.errors ?? 0) + (r.throughput?.badStatus ?? 0) > 0);
  if (broken.length > 0) throw new Error(`errors or non-2xx answers in: ${broken.map((r) => r.target.label).join(", ")}`);
}

/** Fisher-Yates with a small seeded generator (mulberry32). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

let exiting = false;
async function exit(code: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await stopAll();
  }
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void exit(130));
setTimeout(() => {
  console.error(`bench: still running after ${WATCHDOG_MS / 60_000} minutes; stopping everything`);
  void exit(1);
}, WATCHDOG_MS).unref();

try {
  await main();
  await exit(0);
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  await exit(1);
}
