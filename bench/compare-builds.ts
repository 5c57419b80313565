#!/usr/bin/env node
/**
 * A/B for a performance fix: runs two or more dry-run builds of the edge
 * (directories under bench/out/, e.g. one from main and one from a branch)
 * each in its own workerd, all pinned to the proxy core, and drives one
 * path on each in alternation; prints the workerd CPU per request (min and
 * median: the min is the least disturbed on a shared machine) and req/s.
 *
 *   npx wrangler deploy --dry-run --outdir bench/out/a    # before
 *   npx wrangler deploy --dry-run --outdir bench/out/b    # after
 *   node bench/compare-builds.ts a b
 *   node bench/compare-builds.ts b b:ACCESS_LOG=errors   # one build, two settings
 *
 * A build may carry extra bindings after a colon (`dir:NAME=value,NAME=value`).
 * BENCH_PATH (default `bench/Patient/bench-1`), BENCH_CONNECTIONS (32) and
 * BENCH_RUNS (8, of 2 s each) choose the load; the bare pass-through Worker
 * beside the first build is measured too, as the floor.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { wrk } from "./loadgen.ts";
import { benchCores, cpuSeconds, startBenchUpstream, stopAll } from "./processes.ts";
import { median } from "./stats.ts";
import { BENCH_API_KEY, SOURCE } from "./targets.ts";
import { startWorkerd } from "./workerd.ts";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const builds = process.argv.slice(2);
const path = process.env.BENCH_PATH ?? `${SOURCE}/Patient/bench-1`;
const connections = process.env.BENCH_CONNECTIONS ?? "32";
const runs = process.env.BENCH_RUNS ?? "8";
if (builds.length === 0) {
  console.error("usage: node bench/compare-builds.ts <dir under bench/out>[:NAME=value,...] [...]");
  process.exit(2);
}
// Every argument is checked before anything starts, so a bad one leaves no process behind.
const specs = builds.map((build) => {
  const [dir = build, settings = ""] = build.split(/:(.*)/s);
  const pairs = settings.split(",").filter(Boolean);
  if (pairs.some((kv) => !/^[A-Z][A-Z0-9_]*=/.test(kv))) {
    console.error(`${build}: settings are NAME=value pairs after the colon, separated by commas (values cannot hold commas)`);
    process.exit(2);
  }
  return { build, dir, extra: Object.fromEntries(pairs.map((kv) => kv.split(/=(.*)/s).slice(0, 2) as [string, string])) };
});
const { generatorCore, proxyCore } = benchCores();

try {
  const { port } = await startBenchUpstream(join(BENCH_DIR, "upstream.ts"), generatorCore);
  const wrangler = unstable_readConfig({ config: join(BENCH_DIR, "..", "wrangler.toml") });
  const rows: Array<{ name: string; url: string; pid: number; cpu: number[]; rps: number[] }> = [];
  for (const [n, { build, dir, extra }] of specs.entries()) {
    const w = await startWorkerd({
      edgeDir: join(BENCH_DIR, "out", dir),
      configPath: join(BENCH_DIR, "out", `compare-${n}.capnp`),
      storageDir: join(BENCH_DIR, "out", `compare-${n}-storage`),
      passthroughScript: join(BENCH_DIR, "passthrough-worker.js"),
      kvScript: join(BENCH_DIR, "kv-worker.js"),
      wrangler,
      edgeBindings: { PROXY_API_KEYS: `bench:${BENCH_API_KEY}`, ALLOW_INSECURE_HTTP: "true", FHIR_SOURCE_BENCH: `fhir+http://127.0.0.1:${port}/fhir/R4`, ...extra },
      upstreamOrigin: `http://127.0.0.1:${port}`,
      core: proxyCore,
    });
    if (rows.length === 0) rows.push({ name: "bare Worker", url: `${w.passthroughUrl}fhir/R4/${path.slice(SOURCE.length + 1)}`, pid: w.pid, cpu: [], rps: [] });
    rows.push({ name: build, url: w.edgeUrl + path, pid: w.pid, cpu: [], rps: [] });
  }
  const generator = wrk(generatorCore);
  const headers = { "X-Api-Key": BENCH_API_KEY };
  for (const row of rows) await generator.run({ url: row.url, headers, connections: Number(connections), seconds: 1 });
  for (let i = 0; i < Number(runs); i++) {
    for (const row of rows) {
      const before = cpuSeconds(row.pid);
      const r = await generator.run({ url: row.url, headers, connections: Number(connections), seconds: 2 });
      if (r.badStatus + r.errors > 0 || r.requests === 0) throw new Error(`${row.name}: ${r.requests} answers, ${r.badStatus} bad, ${r.errors} errors`);
      row.cpu.push(((cpuSeconds(row.pid) - before) * 1000) / r.requests);
      row.rps.push(r.rps);
    }
  }
  for (const row of rows) {
    console.log(
      `${row.name.padEnd(14)} CPU ms/req min ${Math.min(...row.cpu).toFixed(3)} median ${median(row.cpu).toFixed(3)} | req/s median ${Math.round(median(row.rps))} max ${Math.round(Math.max(...row.rps))}`,
    );
  }
} finally {
  await stopAll();
}
