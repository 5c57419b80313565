/**
 * Summaries of repeated runs: medians (robust to the odd disturbed run on a
 * shared machine), with the spread kept for the report.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import type { LoadResult } from "./loadgen.ts";

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One run of one row at one concurrency. */
export interface Sample extends LoadResult {
  /** CPU seconds the proxy process(es) used over the run, per request, in ms; undefined for direct. */
  proxyCpuMsPerRequest: number | undefined;
  /** Share of the proxy core busy with processes other than the proxy (0..1); undefined when not pinned. */
  foreignLoad: number | undefined;
}

export interface Summary {
  runs: number;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  p50Ms: number;
  p99Ms: number;
  proxyCpuMsPerRequest: number | undefined;
  foreignLoad: number | undefined;
  requests: number;
  errors: number;
  badStatus: number;
}

export function summarize(samples: readonly Sample[]): Summary {
  const defined = (xs: Array<number | undefined>) => xs.filter((x): x is number => x !== undefined);
  const cpu = defined(samples.map((s) => s.proxyCpuMsPerRequest));
  const foreign = defined(samples.map((s) => s.foreignLoad));
  return {
    runs: samples.length,
    rps: median(samples.map((s) => s.rps)),
    rpsMin: Math.min(...samples.map((s) => s.rps)),
    rpsMax: Math.max(...samples.map((s) => s.rps)),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    proxyCpuMsPerRequest: cpu.length > 0 ? median(cpu) : undefined,
    foreignLoad: foreign.length > 0 ? median(foreign) : undefined,
    requests: samples.reduce((n, s) => n + s.requests, 0),
    errors: samples.reduce((n, s) => n + s.errors, 0),
    badStatus: samples.reduce((n, s) => n + s.badStatus, 0),
  };
}
