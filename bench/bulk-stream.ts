/**
 * The Bulk Data section of `npm run bench` (issue 12): a large generated
 * NDJSON file streamed through the edge's `$bulk` file URL, beside the bare
 * pass-through Worker fetching the same file from the same server, both in
 * bench/run.ts's workerd on its pinning. MB/s and workerd CPU milliseconds
 * per MB for each, alternated.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import type { BulkServer } from "../test/peers/bulk-server.ts";
import { cpuSecondsOf } from "./processes.ts";
import { median } from "./stats.ts";
import { BENCH_API_KEY } from "./targets.ts";
import type { Workerd } from "./workerd.ts";

/** The edge's source name for the Bulk Data server. */
export const BULK_SOURCE = "bulk";

/** The edge bindings that point a source at the Bulk Data server and sign its file URLs. */
export function bulkEdgeBindings(bulk: BulkServer): Record<string, string> {
  return {
    BULK_URL_SECRET: "bulk-bench-url-secret-not-a-secret",
    [`FHIR_SOURCE_${BULK_SOURCE.toUpperCase()}`]: `fhir+http://${bulk.fhirBase.slice("http://".length)}?token=bench-upstream-token`,
  };
}

export interface BulkStreamOptions {
  workerd: Workerd;
  bulk: BulkServer;
  /** The file's size in MiB (the server generates it as it sends it). */
  mb: number;
  runs: number;
  log: (msg: string) => void;
}

export interface BulkRow {
  label: string;
  mbPerSecond: number;
  cpuMsPerMb: number;
  range: [number, number];
}

/** Bytes of a download, read as the client gets them (nothing kept). */
async function download(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`bulk row: ${url} answered ${res.status}`);
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) bytes += chunk.length;
  return bytes;
}

export async function measureBulkStream(o: BulkStreamOptions): Promise<{ rows: BulkRow[]; section: { title: string; lines: string[]; markdown: string[] } }> {
  const w = o.workerd;
  if (!w.bulkPassthroughUrl) throw new Error("bulk row: workerd was started without the Bulk Data pass-through Worker");
  const headers = { "X-Api-Key": BENCH_API_KEY };
  o.bulk.largeFile(o.mb * 2 ** 20);
  // Kick-off and poll through the edge, as a client would, for the signed file URL.
  const kick = await fetch(`${w.edgeUrl}${BULK_SOURCE}/$export?_type=Patient`, { headers: { ...headers, Prefer: "respond-async" } });
  await kick.arrayBuffer();
  const status = kick.headers.get("Content-Location");
  if (kick.status !== 202 || !status) throw new Error(`bulk row: the edge's kick-off answered ${kick.status}`);
  let manifest: { output: Array<{ url: string }> } | undefined;
  for (let i = 0; !manifest; i++) {
    if (i > 100) throw new Error("bulk row: the export never completed");
    const poll = await fetch(status, { headers });
    if (poll.status === 200) manifest = (await poll.json()) as typeof manifest;
    else {
      await poll.arrayBuffer();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // The server lists the large file last.
  const large = manifest!.output.at(-1)!.url;
  const rows: Array<{ label: string; url: string; headers: Record<string, string> }> = [
    { label: "bare pass-through Worker", url: "", headers: {} },
    { label: "edge, `$bulk` file URL", url: large, headers },
  ];
  // The first download through the edge (a warm-up) shows which path it asked the server for; the bare Worker fetches that path.
  const edgeBytes = await download(rows[1]!.url, rows[1]!.headers);
  const path = o.bulk.requests.filter((r) => r.path.includes("Large.ndjson")).at(-1)?.path;
  if (!path) throw new Error("bulk row: the edge's file download reached no Large.ndjson on the server");
  rows[0]!.url = `${w.bulkPassthroughUrl}${path.slice(1)}`;
  const bareBytes = await download(rows[0]!.url, {});
  if (edgeBytes !== o.mb * 2 ** 20 || bareBytes !== edgeBytes) throw new Error(`bulk row: downloaded ${edgeBytes} bytes through the edge and ${bareBytes} through the bare Worker, not ${o.mb} MiB`);

  o.log(`Bulk Data: a ${o.mb} MiB NDJSON file, bare Worker and edge alternated, ${o.runs} downloads each`);
  const samples = rows.map(() => [] as Array<{ mbps: number; cpuMsPerMb: number }>);
  for (let run = 0; run < o.runs; run++) {
    for (const k of run % 2 === 0 ? [0, 1] : [1, 0]) {
      const row = rows[k]!;
      const cpu0 = cpuSecondsOf([w.pid]);
      const t0 = performance.now();
      const bytes = await download(row.url, row.headers);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = cpuSecondsOf([w.pid]) - cpu0;
      samples[k]!.push({ mbps: bytes / 2 ** 20 / seconds, cpuMsPerMb: (cpu * 1000) / (bytes / 2 ** 20) });
    }
  }
  const result: BulkRow[] = rows.map((row, k) => {
    const mbps = samples[k]!.map((s) => s.mbps);
    return { label: row.label, mbPerSecond: median(mbps), cpuMsPerMb: median(samples[k]!.map((s) => s.cpuMsPerMb)), range: [Math.min(...mbps), Math.max(...mbps)] };
  });
  const bare = result[0]!;
  return {
    rows: result,
    section: {
      title: `Bulk Data: a ${o.mb} MiB NDJSON file through the edge's file URL`,
      lines: [
        `A Bulk Data export kicked off and polled through the edge (source \`${BULK_SOURCE}\`, the tests' Bulk Data server, test/peers/bulk-server.ts, in this harness's process), whose manifest has a generated \`Large.ndjson\` of ${o.mb} MiB that the server writes as it sends it; then the file downloaded ${o.runs} times through the edge's signed \`$bulk\` file URL (API key checked, URL signature checked, the source's credentials added, the body streamed, not rewritten) and ${o.runs} times through the bare pass-through Worker from the same server, alternated. The client (this harness, fetch) counts the bytes and keeps none.`,
        "MB/s: MiB over the download's wall time, medians (range min–max). CPU per MB: the whole workerd process's user+system CPU over a download, per MiB: the runtime's share shows in the bare Worker's.",
      ],
      markdown: [
        "| row | MB/s | range | × bare | workerd CPU ms per MB |",
        "|---|---:|---:|---:|---:|",
        ...result.map((r) => `| ${r.label} | ${r.mbPerSecond.toFixed(0)} | ${r.range[0].toFixed(0)}–${r.range[1].toFixed(0)} | ${(r.mbPerSecond / bare.mbPerSecond).toFixed(2)}x | ${r.cpuMsPerMb.toFixed(2)} |`),
      ],
    },
  };
}
