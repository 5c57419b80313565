/**
 * Two `npm run bench` sections (issue 14), measured by bench/run.ts in its own
 * workerd, on its pinning:
 *
 * 1. Open loop: requests at a fixed rate (half of what the bare Worker
 *    sustained at the high concurrency in this run's tables), so latency is
 *    what a client feels at a realistic load rather than at saturation:
 *    p50/p99 of the bare pass-through Worker, the floor Worker and the edge,
 *    side by side, on the 2 KB Patient read. autocannon's `overallRate`,
 *    whose latencies are corrected for coordinated omission.
 * 2. Rate limiting on versus off: the edge's req/s at the high concurrency
 *    with `PROXY_RATE_LIMITS=*:RATE_LIMIT_BENCH` (a second edge, same build;
 *    a limit never reached, so every request pays the check and none is
 *    refused) and without, alternated. RATE_LIMIT_BENCH is a service binding
 *    to bench/ratelimit-worker.js (an RPC per request in the same workerd),
 *    standing in for Cloudflare's binding, which plain workerd lacks.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { PATIENT_ID } from "./fixtures.ts";
import type { LoadGenerator } from "./loadgen.ts";
import { cpuSecondsOf } from "./processes.ts";
import { median } from "./stats.ts";
import { BENCH_API_KEY, SOURCE } from "./targets.ts";
import type { Workerd } from "./workerd.ts";

/** A client the limited edge maps to a binding that refuses everything. */
export const REFUSED_KEY = "bench-refused-key-0123456789";

/** What bench/run.ts gives the limited edge (on top of the edge's bindings). */
export function limitedEdgeOptions(script: string): { script: string; bindings: Record<string, string>; services: Record<string, string> } {
  return {
    script,
    bindings: { PROXY_API_KEYS: `bench:${BENCH_API_KEY},refused:${REFUSED_KEY}`, PROXY_RATE_LIMITS: "refused:RATE_LIMIT_REFUSE,*:RATE_LIMIT_BENCH" },
    services: { RATE_LIMIT_BENCH: "RateLimiter", RATE_LIMIT_REFUSE: "Refuser" },
  };
}

type AutocannonRun = (o: Record<string, unknown>) => Promise<{ requests: { total: number }; duration: number; latency: { p50: number; p99: number }; non2xx: number; errors: number; timeouts: number }>;

export interface OpenLoopOptions {
  workerd: Workerd;
  /** The load generator of the tables (closed loop). */
  generator: LoadGenerator;
  /** The bare Worker's median req/s on the 2 KB read at `connections`, from the tables. */
  bareRps: number;
  connections: number;
  seconds: number;
  reps: number;
  log: (msg: string) => void;
}

export interface OpenLoopResult {
  rate: number;
  /** Per row: median p50, p99 and achieved req/s over the repetitions. */
  open: Array<{ label: string; p50Ms: number; p99Ms: number; rps: number }>;
  /** Closed loop, alternated: req/s medians (and ranges) and workerd CPU ms per request. */
  limiting: Array<{ label: string; rps: number; min: number; max: number; cpuMsPerRequest: number }>;
  /** The report's sections: words (bullets), then a table. */
  sections: Array<{ title: string; lines: string[]; markdown: string[] }>;
}

export async function measureOpenLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const w = o.workerd;
  if (!w.floorUrl || !w.limitedEdgeUrl) throw new Error("open loop: workerd was started without the floor or the limited edge");
  const key = { "X-Api-Key": BENCH_API_KEY };
  const read = `${SOURCE}/Patient/${PATIENT_ID}`;
  const rows = {
    bare: { label: "bare pass-through Worker", url: `${w.passthroughUrl}fhir/R4/Patient/${PATIENT_ID}`, headers: {} },
    floor: { label: "floor: hand-written Worker, the edge's duties only", url: `${w.floorUrl}${read}`, headers: key },
    edge: { label: "edge (streamed), rate limiting off", url: `${w.edgeUrl}${read}`, headers: key },
    limited: { label: "edge, rate limiting on (PROXY_RATE_LIMITS=*:RATE_LIMIT_BENCH)", url: `${w.limitedEdgeUrl}${read}`, headers: key },
  };
  for (const row of Object.values(rows)) {
    const res = await fetch(row.url, { headers: row.headers });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`open loop: ${row.label} answered ${res.status}`);
  }
  // The limited edge asks its binding: a client mapped to one that refuses gets 429.
  const refused = await fetch(rows.limited.url, { headers: { "X-Api-Key": REFUSED_KEY } });
  await refused.arrayBuffer();
  if (refused.status !== 429) throw new Error(`the rate-limited edge answered ${refused.status} to a refused client, not 429`);

  // Rate limiting on versus off, alternated (rotating who goes first), after a warm-up of the new edge.
  o.log(`rate limiting on versus off: ${o.reps} alternating pairs of ${o.seconds} s at ${o.connections} connections`);
  await o.generator.run({ url: rows.limited.url, headers: key, connections: o.connections, seconds: 1 });
  const closed = { edge: [] as number[], limited: [] as number[] };
  const cpu = { edge: [] as number[], limited: [] as number[] };
  for (let rep = 0; rep < o.reps; rep++) {
    for (const id of rep % 2 === 0 ? (["edge", "limited"] as const) : (["limited", "edge"] as const)) {
      const cpu0 = cpuSecondsOf([w.pid]);
      const r = await o.generator.run({ url: rows[id].url, headers: rows[id].headers, connections: o.connections, seconds: o.seconds });
      const used = cpuSecondsOf([w.pid]) - cpu0;
      if (r.badStatus > 0 || r.errors > 0 || r.requests === 0) throw new Error(`${rows[id].label}: ${r.requests} requests, ${r.badStatus} bad answers, ${r.errors} errors`);
      closed[id].push(r.rps);
      cpu[id].push((used * 1000) / r.requests);
    }
  }

  const rate = Math.round(o.bareRps / 2);
  o.log(`open loop at ${rate} req/s (half the bare Worker's ${Math.round(o.bareRps)}): bare, floor, edge, ${o.reps} rounds of ${o.seconds} s`);
  const autocannon = ((await import("autocannon" as string)) as { default: AutocannonRun }).default;
  const open = { bare: [] as Array<{ p50: number; p99: number; rps: number }>, floor: [] as Array<{ p50: number; p99: number; rps: number }>, edge: [] as Array<{ p50: number; p99: number; rps: number }> };
  for (let rep = 0; rep < o.reps; rep++) {
    const order = (["bare", "floor", "edge"] as const).map((_, i, a) => a[(i + rep) % a.length]!);
    for (const id of order) {
      // More connections than the rate needs at these latencies, so a slow answer does not hold the next request back.
      const r = await autocannon({ url: rows[id].url, headers: rows[id].headers, connections: 64, duration: o.seconds, overallRate: rate, pipelining: 1, timeout: 10 });
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`open loop, ${rows[id].label}: ${r.non2xx} bad answers, ${r.errors} errors`);
      open[id].push({ p50: r.latency.p50, p99: r.latency.p99, rps: r.requests.total / r.duration });
    }
  }

  const result: OpenLoopResult = {
    rate,
    open: (["bare", "floor", "edge"] as const).map((id) => ({
      label: rows[id].label,
      p50Ms: median(open[id].map((x) => x.p50)),
      p99Ms: median(open[id].map((x) => x.p99)),
      rps: median(open[id].map((x) => x.rps)),
    })),
    limiting: (["edge", "limited"] as const).map((id) => ({ label: rows[id].label, rps: median(closed[id]), min: Math.min(...closed[id]), max: Math.max(...closed[id]), cpuMsPerRequest: median(cpu[id]) })),
    sections: [],
  };
  const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const off = result.limiting[0]!;
  result.sections = [
    {
      title: `Open loop: ${rate} req/s on the 2 KB read, bare vs floor vs edge`,
      lines: [
        `Requests sent at a fixed **${rate} req/s** (half of the bare Worker's ${Math.round(o.bareRps)} req/s at ${o.connections} connections in the tables above) to the 2 KB Patient read, whatever the answers' pace: autocannon \`overallRate\` over 64 connections, latencies corrected for coordinated omission (a request counts from when it was due), in whole milliseconds.`,
        `${o.reps} rounds of ${o.seconds} s, the three rows in turn (rotating who goes first); medians. "req/s answered" below the rate means the row could not keep up with it (its latencies then include the queue).`,
      ],
      markdown: ["| row | req/s answered | p50 ms | p99 ms |", "|---|---:|---:|---:|", ...result.open.map((r) => `| ${r.label} | ${f(r.rps)} | ${f(r.p50Ms)} | ${f(r.p99Ms)} |`)],
    },
    {
      title: "Rate limiting on versus off: the edge on the 2 KB read",
      lines: [
        `The edge's req/s at ${o.connections} connections (closed loop, ${o.generator.version}) without \`PROXY_RATE_LIMITS\`, and on a second edge of the same build in the same workerd with \`PROXY_RATE_LIMITS=*:RATE_LIMIT_BENCH\`, alternated, ${o.reps} pairs of ${o.seconds} s after a 1 s warm-up; medians.`,
        "The limit is never reached, so every request pays the check and none is refused; first, a client mapped to a binding that refuses everything got 429, so the edge really asks.",
        "Plain workerd has no Rate Limiting binding: RATE_LIMIT_BENCH is a service binding to bench/ratelimit-worker.js in the same workerd (an RPC per request, a counter in memory), standing in for Cloudflare's, whose check is a call to a service in the same location.",
      ],
      markdown: [
        "| row | req/s | range | × rate limiting off | workerd CPU ms per request |",
        "|---|---:|---:|---:|---:|",
        ...result.limiting.map((r) => `| ${r.label} | ${f(r.rps)} | ${f(r.min)}–${f(r.max)} | ${(r.rps / off.rps).toFixed(2)}x | ${r.cpuMsPerRequest.toFixed(3)} |`),
      ],
    },
  ];
  return result;
}
