#!/usr/bin/env node
/**
 * Where the edge's CPU goes: runs a dry-run build (a directory under
 * bench/out/, default `edge`, as `npm run bench` leaves it) in workerd with
 * its inspector open, samples a V8 CPU profile of the edge Worker while wrk
 * drives one path, and prints the functions with the most self time per
 * request. Sampling slows every function call, so read the shares, not the
 * absolute microseconds.
 *
 *   node bench/profile.ts [build] [path]      # path default bench/Patient/bench-1
 *
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { wrk } from "./loadgen.ts";
import { freePort } from "./nginx.ts";
import { benchCores, startBenchUpstream, stopAll } from "./processes.ts";
import { BENCH_API_KEY, SOURCE } from "./targets.ts";
import { startWorkerd } from "./workerd.ts";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const [build = "edge", path = `${SOURCE}/Patient/bench-1`] = process.argv.slice(2);
const { generatorCore, proxyCore } = benchCores();

try {
  const { port } = await startBenchUpstream(join(BENCH_DIR, "upstream.ts"), generatorCore);
  const inspectorPort = await freePort();
  process.env.BENCH_INSPECTOR = String(inspectorPort);
  const w = await startWorkerd({
    edgeDir: join(BENCH_DIR, "out", build),
    configPath: join(BENCH_DIR, "out", `${build}-profile.capnp`),
    passthroughScript: join(BENCH_DIR, "passthrough-worker.js"),
    kvScript: join(BENCH_DIR, "kv-worker.js"),
    wrangler: unstable_readConfig({ config: join(BENCH_DIR, "..", "wrangler.toml") }),
    edgeBindings: { PROXY_API_KEYS: `bench:${BENCH_API_KEY}`, ALLOW_INSECURE_HTTP: "true", FHIR_SOURCE_BENCH: `fhir+http://127.0.0.1:${port}/fhir/R4` },
    upstreamOrigin: `http://127.0.0.1:${port}`,
    core: proxyCore,
  });
  const generator = wrk(generatorCore);
  const run = { url: w.edgeUrl + path, headers: { "X-Api-Key": BENCH_API_KEY }, connections: 8, seconds: 5 };
  await generator.run({ ...run, seconds: 1 });

  const socket = new WebSocket(`ws://127.0.0.1:${inspectorPort}/edge`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  socket.onmessage = (m) => {
    const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  };
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      pending.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 100 });
  await call("Profiler.start");
  const result = await generator.run(run);
  const { profile } = (await call("Profiler.stop")) as { profile: Profile };
  socket.close();

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((nodeId, i) => {
    const f = byId.get(nodeId)!.callFrame;
    const dt = profile.timeDeltas[i] ?? 0;
    if (f.functionName === "(idle)") return;
    busy += dt;
    const key = `${f.functionName || "(anonymous)"}${f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber + 1}` : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  console.log(`${result.requests} requests to ${path}; busy ${(busy / result.requests).toFixed(0)} µs per request while sampled; top self time:`);
  for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${((us / busy) * 100).toFixed(1).padStart(6)}%  ${key}`);
  }
} finally {
  await stopAll();
}
