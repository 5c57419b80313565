#!/usr/bin/env node
/**
 * `node bench/open-loop.ts`: two rows `npm run bench` does not have yet.
 *
 * 1. Open loop: requests at a fixed rate (half of what the bare Worker
 *    sustains at 32 connections in this run), so latency is what a client
 *    feels at a realistic load rather than at saturation: p50/p99 of the bare
 *    pass-through Worker, the floor Worker and the edge, side by side, on the
 *    2 KB Patient read. autocannon's `overallRate`, whose latencies are
 *    corrected for coordinated omission.
 * 2. Rate limiting on versus off: the edge's req/s at 32 connections with
 *    `PROXY_RATE_LIMITS=*:RATE_LIMIT_BENCH` (a limit never reached, so every
 *    request pays the check and none is refused) and without, alternated.
 *    Plain workerd has no Rate Limiting binding; RATE_LIMIT_BENCH is a
 *    service binding to a small in-memory limiter Worker in the same process
 *    (an RPC per request), which stands in for Cloudflare's binding; on
 *    Cloudflare the check is a call to a local service in the same location.
 *
 * Same processes and pinning as bench/run.ts (the edge as built for deploy,
 * in plain workerd beside the bare and floor Workers). Writes
 * bench/results-open-loop.md. Environment: BENCH_SECONDS (per run, default 3),
 * BENCH_REPS (default 3).
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { buildForDeploy } from "./bundle-size.ts";
import { PATIENT_ID } from "./fixtures.ts";
import { autocannon } from "./loadgen.ts";
import { benchCores, onStop, pin, spawnPinned, startBenchUpstream, stopAll, waitForLine } from "./processes.ts";
import { median } from "./stats.ts";
import { BENCH_API_KEY, SOURCE } from "./targets.ts";
import { workerdBinary, workerdConfig } from "./workerd.ts";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);
const OUT = join(BENCH_DIR, "out");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const KEY = { "X-Api-Key": BENCH_API_KEY };
/** A client the limited edge maps to a binding that refuses everything. */
const REFUSED_KEY = "bench-refused-key-0123456789";

/** A fixed-window limiter answering the Rate Limiting binding's `limit({ key })` over RPC. */
const LIMITER_WORKER = `import { WorkerEntrypoint } from "cloudflare:workers";
const windows = new Map();
export class RateLimiter extends WorkerEntrypoint {
  async limit({ key }) {
    const epoch = Math.floor(Date.now() / (Number(this.env.PERIOD) * 1000));
    const w = windows.get(key);
    const count = w && w.epoch === epoch ? w.count : 0;
    if (count >= Number(this.env.LIMIT)) return { success: false };
    windows.set(key, { epoch, count: count + 1 });
    return { success: true };
  }
}
/** Refuses everything: proves the edge really asks its binding. */
export class Refuser extends WorkerEntrypoint {
  async limit() {
    return { success: false };
  }
}
export default { fetch: () => new Response("rate limiter", { status: 404 }) };
`;

const str = (v: string) => JSON.stringify(v);

/**
 * bench/workerd.ts's config with a second edge (`edge-limited`: the same
 * build, rate limits on) and the limiter Worker added.
 */
function configWithLimitedEdge(base: string, limiterScript: string): string {
  const start = base.indexOf("const edge :Workerd.Worker = (");
  const end = base.indexOf("\n);", start) + 3;
  const limited = base
    .slice(start, end)
    .replace("const edge :Workerd.Worker", "const edgeLimited :Workerd.Worker")
    .replaceAll('uniqueKey = "fhir-edge-', 'uniqueKey = "fhir-edge-limited-')
    .replace(
      "bindings = [ ",
      `bindings = [ (name = "PROXY_RATE_LIMITS", text = "refused:RATE_LIMIT_REFUSE,*:RATE_LIMIT_BENCH"), (name = "RATE_LIMIT_BENCH", service = (name = "ratelimit", entrypoint = "RateLimiter")), (name = "RATE_LIMIT_REFUSE", service = (name = "ratelimit", entrypoint = "Refuser")),\n    `,
    );
  return base
    .replace(
      '(name = "kv", worker = .kv),',
      `(name = "kv", worker = .kv),\n    (name = "edge-limited", worker = .edgeLimited),\n    (name = "ratelimit", worker = .ratelimit),`,
    )
    .replace("sockets = [\n", `sockets = [\n    (name = "edge-limited", address = "127.0.0.1:0", http = (), service = "edge-limited"),\n`)
    .concat(
      `${limited}
const ratelimit :Workerd.Worker = (
  modules = [ (name = "ratelimit-worker.js", esModule = embed ${str(limiterScript)}) ],
  compatibilityDate = "2026-10-23",
  bindings = [ (name = "LIMIT", text = "1000000000"), (name = "PERIOD", text = "60") ],
);
`,
    );
}

async function main(): Promise<void> {
  const { generatorCore, proxyCore } = benchCores();
  pin(process.pid, generatorCore);
  mkdirSync(OUT, { recursive: true });
  const edgeDir = join(OUT, "edge");
  rmSync(edgeDir, { recursive: true, force: true });
  await buildForDeploy(edgeDir, ROOT);

  const { port } = await startBenchUpstream(join(BENCH_DIR, "upstream.ts"), generatorCore);
  const upstreamBase = `127.0.0.1:${port}/fhir/R4`;
  const configPath = join(OUT, "workerd-open-loop.capnp");
  const storageDir = join(OUT, "do-storage-open-loop");
  rmSync(storageDir, { recursive: true, force: true });
  mkdirSync(storageDir, { recursive: true });
  writeFileSync(join(OUT, "ratelimit-worker.js"), LIMITER_WORKER);
  const base = workerdConfig({
    edgeDir,
    configPath,
    storageDir,
    passthroughScript: join(BENCH_DIR, "passthrough-worker.js"),
    kvScript: join(BENCH_DIR, "kv-worker.js"),
    floor: { script: join(BENCH_DIR, "floor-worker.js"), bindings: { API_KEY: BENCH_API_KEY, UPSTREAM_BASE: `http://${upstreamBase}` } },
    wrangler: unstable_readConfig({ config: join(ROOT, "wrangler.toml") }),
    edgeBindings: {
      PROXY_AUTH: "api-key",
      PROXY_API_KEYS: `bench:${BENCH_API_KEY},refused:${REFUSED_KEY}`,
      ALLOW_INSECURE_HTTP: "true",
      [`FHIR_SOURCE_${SOURCE.toUpperCase()}`]: `fhir+http://${upstreamBase}`,
    },
    upstreamOrigin: `http://127.0.0.1:${port}`,
    core: proxyCore,
  });
  writeFileSync(configPath, configWithLimitedEdge(base, "ratelimit-worker.js"));

  const child = spawnPinned(workerdBinary(), ["serve", configPath, "--control-fd=3"], proxyCore, { stdio: ["ignore", "ignore", "inherit", "pipe"] });
  const ports = new Map<string, number>();
  await waitForLine(
    child.stdio[3] as NodeJS.ReadableStream,
    (line) => {
      const event = JSON.parse(line) as { event: string; socket?: string; port?: number };
      if (event.event === "listen" && event.socket && event.port) ports.set(event.socket, event.port);
      return ports.size === 4 ? true : undefined;
    },
    20_000,
    "workerd",
  );
  (child.stdio[3] as NodeJS.ReadableStream).resume();
  const url = (socket: string, path: string) => `http://127.0.0.1:${ports.get(socket)}/${path}`;
  const read = `fhir/R4/Patient/${PATIENT_ID}`;
  const rows = {
    bare: { label: "bare pass-through Worker", url: url("passthrough", read), headers: {} },
    floor: { label: "floor: hand-written Worker, the edge's duties only", url: url("floor", `${SOURCE}/Patient/${PATIENT_ID}`), headers: KEY },
    edge: { label: "edge (streamed)", url: url("edge", `${SOURCE}/Patient/${PATIENT_ID}`), headers: KEY },
    limited: { label: "edge, rate limiting on (PROXY_RATE_LIMITS=*:RATE_LIMIT_BENCH)", url: url("edge-limited", `${SOURCE}/Patient/${PATIENT_ID}`), headers: KEY },
  };
  for (const row of Object.values(rows)) {
    const res = await fetch(row.url, { headers: row.headers });
    if (res.status !== 200) throw new Error(`${row.label} answered ${res.status}`);
    await res.arrayBuffer();
  }
  // The limited edge asks its binding: a client mapped to one that refuses gets 429.
  const refused = await fetch(rows.limited.url, { headers: { "X-Api-Key": REFUSED_KEY } });
  if (refused.status !== 429) throw new Error(`the rate-limited edge answered ${refused.status} to a refused client, not 429`);
  await refused.arrayBuffer();

  const generator = await autocannon();
  const run = await import("autocannon" as string).then((m: { default: (o: Record<string, unknown>) => Promise<{ requests: { total: number }; duration: number; latency: { p50: number; p99: number }; non2xx: number; errors: number }> }) => m.default);

  console.log("closed loop, 32 connections: bare, edge, edge with rate limiting (alternated)");
  const closed: Record<"bare" | "edge" | "limited", number[]> = { bare: [], edge: [], limited: [] };
  for (let rep = 0; rep < REPS; rep++) {
    for (const id of ["bare", "edge", "limited"] as const) {
      const r = await generator.run({ url: rows[id].url, headers: rows[id].headers, connections: 32, seconds: SECONDS });
      if (r.badStatus > 0 || r.errors > 0) throw new Error(`${id}: ${r.badStatus} bad answers, ${r.errors} errors`);
      closed[id].push(r.rps);
    }
  }
  const bareRps = median(closed.bare);
  const rate = Math.round(bareRps / 2);

  console.log(`open loop at ${rate} req/s (half the bare Worker's ${Math.round(bareRps)})`);
  const open: Record<"bare" | "floor" | "edge", Array<{ p50: number; p99: number; rps: number }>> = { bare: [], floor: [], edge: [] };
  for (let rep = 0; rep < REPS; rep++) {
    for (const id of ["bare", "floor", "edge"] as const) {
      const r = await run({ url: rows[id].url, headers: rows[id].headers, connections: 64, duration: SECONDS, overallRate: rate, pipelining: 1, timeout: 10 });
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`${id}: ${r.non2xx} bad answers, ${r.errors} errors`);
      open[id].push({ p50: r.latency.p50, p99: r.latency.p99, rps: r.requests.total / r.duration });
    }
  }

  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const lines = [
    "# fhir-edge: open-loop latency and the cost of rate limiting",
    "",
    `Written by \`node bench/open-loop.ts\` on ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}; ${REPS} repetitions of ${SECONDS} s per row, medians; ${generator.version}. Same processes and pinning as bench/results.md (workerd with the deploy build; load generator and upstream on one core, workerd on the other). One run on a shared machine: compare rows with each other.`,
    "",
    `## Open loop: ${rate} req/s (half of the bare Worker's ${Math.round(bareRps)} req/s at 32 connections), 2 KB Patient read`,
    "",
    "autocannon `overallRate` over 64 connections, latencies corrected for coordinated omission.",
    "",
    "| row | req/s sent | p50 ms | p99 ms |",
    "|---|---:|---:|---:|",
    ...(["bare", "floor", "edge"] as const).map((id) => `| ${rows[id].label} | ${fmt(median(open[id].map((x) => x.rps)))} | ${fmt(median(open[id].map((x) => x.p50)))} | ${fmt(median(open[id].map((x) => x.p99)))} |`),
    "",
    "## Rate limiting on versus off: 32 connections, closed loop, 2 KB Patient read",
    "",
    "The limit is never reached: every request pays the check, none is refused. The binding is a stand-in (an RPC to an in-memory limiter Worker in the same workerd); see the header of bench/open-loop.ts.",
    "",
    "| row | req/s | range | × rate limiting off |",
    "|---|---:|---:|---:|",
    ...(["edge", "limited"] as const).map(
      (id) => `| ${rows[id].label} | ${fmt(median(closed[id]))} | ${fmt(Math.min(...closed[id]))}–${fmt(Math.max(...closed[id]))} | ${(median(closed[id]) / median(closed.edge)).toFixed(2)}x |`,
    ),
    `| ${rows.bare.label} (for scale) | ${fmt(bareRps)} | ${fmt(Math.min(...closed.bare))}–${fmt(Math.max(...closed.bare))} | – |`,
    "",
  ];
  writeFileSync(join(BENCH_DIR, "results-open-loop.md"), lines.join("\n"));
  console.log(lines.join("\n"));
}

onStop(() => undefined);
main()
  .then(stopAll)
  .catch(async (error) => {
    console.error(error);
    await stopAll();
    process.exitCode = 1;
  });
