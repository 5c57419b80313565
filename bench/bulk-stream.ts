/**
 * One bench row for Bulk Data files: a large generated NDJSON file streamed
 * through the edge's `$bulk` file URL, beside the bare pass-through Worker
 * fetching the same file, both in plain workerd (as bench/run.ts runs them).
 * Prints MB/s and workerd CPU milliseconds per MB for each; not part of
 * `npm run bench`'s report yet.
 *
 *     node bench/bulk-stream.ts            # 256 MB, 3 runs each
 *     BULK_BENCH_MB=1024 node bench/bulk-stream.ts
 *
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { join, dirname } from "node:path";
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { unstable_readConfig } from "wrangler";
import { startBulkServer } from "../test/peers/bulk-server.ts";
import { buildForDeploy } from "./bundle-size.ts";
import { cpuSecondsOf, stopAll } from "./processes.ts";
import { startWorkerd } from "./workerd.ts";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const OUT = join(BENCH_DIR, "out", "bulk");
const MB = Number(process.env.BULK_BENCH_MB ?? 256);
const RUNS = 3;
const KEY = "bulk-bench-key";

async function download(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
  return bytes;
}

async function main(): Promise<void> {
  const bulk = await startBulkServer({ expectAuthorization: () => true });
  bulk.largeFile(MB << 20);
  const edgeDir = join(OUT, "edge");
  rmSync(edgeDir, { recursive: true, force: true });
  await buildForDeploy(edgeDir, join(BENCH_DIR, ".."));
  const workerd = await startWorkerd({
    edgeDir,
    configPath: join(OUT, "workerd.capnp"),
    storageDir: join(OUT, "do-storage"),
    passthroughScript: join(BENCH_DIR, "passthrough-worker.js"),
    kvScript: join(BENCH_DIR, "kv-worker.js"),
    wrangler: unstable_readConfig({ config: join(BENCH_DIR, "..", "wrangler.toml") }),
    edgeBindings: {
      PROXY_API_KEYS: `bench:${KEY}`,
      ALLOW_INSECURE_HTTP: "true",
      BULK_URL_SECRET: "bulk-bench-url-secret",
      FHIR_SOURCE_EHR: `fhir+http://${bulk.fhirBase.slice("http://".length)}?token=bench-upstream-token`,
    },
    upstreamOrigin: bulk.origin,
    core: undefined,
  });
  try {
    const headers = { "X-Api-Key": KEY };
    const kick = await fetch(`${workerd.edgeUrl}ehr/$export?_type=Patient`, { headers: { ...headers, Prefer: "respond-async" } });
    const status = kick.headers.get("Content-Location")!;
    let manifest: { output: Array<{ url: string }> } | undefined;
    while (!manifest) {
      const poll = await fetch(status, { headers });
      if (poll.status === 200) manifest = (await poll.json()) as typeof manifest;
      else await poll.body?.cancel();
    }
    const edgeFile = manifest!.output.at(-1)!.url;
    const upstreamPath = new URL(JSON.parse(Buffer.from(edgeFile.split("/$bulk/")[1]!.split(".")[0]!, "base64url").toString()).u as string).pathname;
    const rows: Array<[string, string, Record<string, string>]> = [
      ["bare Worker (pass-through)", `${workerd.passthroughUrl}${upstreamPath.slice(1)}`, {}],
      ["edge $bulk file", edgeFile, headers],
    ];
    for (const [name, url, h] of rows) {
      const results: Array<{ mbps: number; cpuMsPerMb: number }> = [];
      for (let i = 0; i < RUNS; i++) {
        const cpu0 = cpuSecondsOf([workerd.pid]);
        const t0 = performance.now();
        const bytes = await download(url, h);
        const seconds = (performance.now() - t0) / 1000;
        const cpu = cpuSecondsOf([workerd.pid]) - cpu0;
        results.push({ mbps: bytes / 2 ** 20 / seconds, cpuMsPerMb: (cpu * 1000) / (bytes / 2 ** 20) });
      }
      const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      console.log(`${name}: ${median(results.map((r) => r.mbps)).toFixed(0)} MB/s, ${median(results.map((r) => r.cpuMsPerMb)).toFixed(2)} ms workerd CPU per MB (${MB} MB, median of ${RUNS})`);
    }
  } finally {
    await stopAll();
    await bulk.close();
  }
}

await main();
