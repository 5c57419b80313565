/**
 * Protection under load (design.md "Protection under load"; docs/protection.md)
 * against a loopback upstream the test scripts, with the real Worker in
 * workerd (one isolate, so "per isolate" is the whole edge here). Everything
 * is asserted by counting what the upstream saw, never by how fast it went.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { healthy, searchset, startScriptedUpstream, type ScriptedUpstream } from "../peers/scripted-upstream.ts";
import { startEdge, type Edge } from "./support/edge.ts";
import { sleep } from "./support/poll.ts";

const ETL = { Authorization: "Bearer etl-key-0123456789" };
const APP = { Authorization: "Bearer app-key-0123456789" };
const OPS = { Authorization: "Bearer ops-key-0123456789" };

let upstream: ScriptedUpstream;
let edge: Edge;

interface Outcome {
  resourceType: string;
  issue: Array<{ code: string; diagnostics?: string; details?: { coding?: Array<{ code: string }> } }>;
}
const codeOf = (o: Outcome) => o.issue[0]?.details?.coding?.[0]?.code;

beforeAll(async () => {
  upstream = await startScriptedUpstream();
  const source = (name: string, params: string) => `fhir+http://${new URL(upstream.url).host}/${name}?${params}`;
  edge = await startEdge(
    {
      PROXY_API_KEYS: `etl:${ETL.Authorization.slice(7)},app:${APP.Authorization.slice(7)},ops:${OPS.Authorization.slice(7)}`,
      PROXY_ADMIN_CLIENTS: "ops",
      PROXY_RATE_LIMITS: "etl:RATE_LIMIT_TINY,*:RATE_LIMIT_ROOMY",
      FHIR_SOURCE_PLAIN: source("plain", ""),
      FHIR_SOURCE_THROTTLED: source("throttled", "max_attempts=3&retry_backoff_factor=0.05&max_backoff_wait=5"),
      FHIR_SOURCE_DOWN: source("down", "max_attempts=3&retry_backoff_factor=0.05&circuit_open_seconds=1"),
      FHIR_SOURCE_OTHER: source("other", ""),
      FHIR_SOURCE_FLAKY: source("flaky", "max_attempts=3&retry_backoff_factor=0.01&retry_budget_percent=20&retry_budget_min_retries=2"),
    },
    {},
    "./test/fixtures/protection/wrangler.toml",
  );
});

afterAll(async () => {
  await edge?.close();
  await upstream?.close();
});

describe("per-client rate limits (PROXY_RATE_LIMITS)", () => {
  it("answers a client over its limit 429 throttled with Retry-After, while another client is served", async () => {
    // RATE_LIMIT_TINY allows 3 a minute; a run of requests can straddle one minute mark, so 7 always trips it.
    let limited: Response | undefined;
    let served = 0;
    for (let i = 0; i < 7 && !limited; i++) {
      const res = await edge.fetch("/plain/Patient/1", { headers: ETL });
      if (res.status === 429) limited = res;
      else {
        expect(res.status).toBe(200);
        await res.body?.cancel();
        served++;
      }
    }
    expect(limited, "etl never got a 429").toBeDefined();
    const retryAfter = Number(limited!.headers.get("Retry-After"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(10);
    const outcome = (await limited!.json()) as Outcome;
    expect(outcome.resourceType).toBe("OperationOutcome");
    expect(outcome.issue[0]?.code).toBe("throttled");
    expect(codeOf(outcome)).toBe("rate-limited");
    // Nothing went upstream for the refused request.
    expect(upstream.calls("plain")).toHaveLength(served);

    const other = await edge.fetch("/plain/Patient/1", { headers: APP });
    expect(other.status).toBe(200);
    await other.body?.cancel();
  });
});

describe("an upstream 429 with Retry-After holds the source", () => {
  it("calls a source answering 429 Retry-After: 2 at most once per 2 s, however many clients ask", async () => {
    let throttling = true;
    upstream.script("throttled", () => (throttling ? { status: 429, headers: { "Retry-After": "2" } } : healthy(0, "")));
    // A POST is not retried: its 429 comes straight back, and from then on the source is held.
    const first = await edge.fetch("/throttled/Patient", { method: "POST", headers: { ...APP, "Content-Type": "application/fhir+json" }, body: '{"resourceType":"Patient"}' });
    expect(first.status).toBe(429);
    expect(first.headers.get("Retry-After")).toBe("2");
    await first.body?.cancel();
    const answers: number[] = [];
    const until = Date.now() + 4500;
    const client = async () => {
      while (Date.now() < until) {
        const res = await edge.fetch("/throttled/Patient/1", { headers: APP });
        answers.push(res.status);
        expect(res.headers.get("Retry-After")).not.toBeNull();
        await res.body?.cancel();
        await sleep(50);
      }
    };
    await Promise.all([client(), client(), client()]);
    const calls = upstream.calls("throttled");
    expect(calls.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < calls.length; i++) expect(calls[i]! - calls[i - 1]!, `calls ${i - 1} and ${i}`).toBeGreaterThanOrEqual(1800);
    expect(answers.length).toBeGreaterThan(calls.length);
    expect(new Set(answers)).toEqual(new Set([429]));

    // Once the source is fine again, the first request after the hold gets through.
    throttling = false;
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      const res = await edge.fetch("/throttled/Patient/1", { headers: APP });
      status = res.status;
      await res.body?.cancel();
      if (status !== 200) await sleep(250);
    }
    expect(status).toBe(200);
  });
});

describe("a circuit breaker per source", () => {
  it("opens after failures in a row, fails fast naming the source, and closes after one good probe", async () => {
    let failing = true;
    upstream.script("down", () => (failing ? { status: 500 } : healthy(0, "")));
    upstream.script("other", () => searchset("Patient", ["o1"]));

    let open: Response | undefined;
    for (let i = 0; i < 10 && !open; i++) {
      const res = await edge.fetch("/down/Patient/1", { headers: APP });
      if (res.status === 503) open = res;
      else {
        expect(res.status).toBe(500);
        await res.body?.cancel();
      }
    }
    expect(open, "the circuit never opened").toBeDefined();
    await open!.body?.cancel();
    // 5 failures in a row open it (the default threshold), retries included.
    expect(upstream.calls("down")).toHaveLength(5);

    // While open: every client is answered at once, and the upstream sees nothing (no attempt, so no backoff).
    const seen = upstream.calls("down").length;
    const fast = await Promise.all(Array.from({ length: 8 }, () => edge.fetch("/down/Patient/1", { headers: APP })));
    for (const res of fast) {
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
      const outcome = (await res.json()) as Outcome;
      expect(codeOf(outcome)).toBe("circuit-open");
      expect(outcome.issue[0]?.code).toBe("transient");
      expect(outcome.issue[0]?.diagnostics).toContain("Source down");
    }
    // An aggregate counts the open source as down (an outcome entry) and still answers with the other.
    const agg = await edge.fetch("/aggregate/Patient?sources=down,other", { headers: APP });
    expect(agg.status).toBe(200);
    const bundle = (await agg.json()) as { entry: Array<{ search?: { mode: string }; resource: Outcome & { id?: string } }> };
    const outcomeEntry = bundle.entry.find((e) => e.search?.mode === "outcome");
    expect(outcomeEntry && codeOf(outcomeEntry.resource)).toBe("circuit-open");
    expect(bundle.entry.some((e) => e.resource.id === "o1")).toBe(true);
    expect(upstream.calls("down")).toHaveLength(seen);

    const status = await (await edge.fetch("/status", { headers: OPS })).json() as { sources: Array<{ name: string; protection: { circuit: { state: string; timesOpened: number } } }> };
    const down = status.sources.find((s) => s.name === "down")!;
    expect(down.protection.circuit.state).toBe("open");
    expect(down.protection.circuit.timesOpened).toBeGreaterThanOrEqual(1);

    // The source recovers: after circuit_open_seconds one probe goes, succeeds and closes the circuit.
    failing = false;
    let first: number | undefined;
    for (let i = 0; i < 40 && first === undefined; i++) {
      const res = await edge.fetch("/down/Patient/1", { headers: APP });
      await res.body?.cancel();
      if (res.status === 200) first = upstream.calls("down").length;
      else {
        expect(res.status).toBe(503);
        await sleep(200);
      }
    }
    expect(first, "the circuit never closed").toBe(seen + 1);
    const after = await Promise.all(Array.from({ length: 4 }, () => edge.fetch("/down/Patient/1", { headers: APP })));
    for (const res of after) {
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    const closed = await (await edge.fetch("/status", { headers: OPS })).json() as typeof status;
    expect(closed.sources.find((s) => s.name === "down")!.protection.circuit.state).toBe("closed");
  });
});

describe("a retry budget per source", () => {
  it("keeps retries of a source failing half the time within the budget, counted at the upstream", async () => {
    // Every other call fails, so no two failures come in a row and the circuit stays closed.
    upstream.script("flaky", (n) => (n % 2 === 1 ? { status: 503 } : healthy(n, "")));
    const requests = 40;
    const started = Date.now();
    for (let i = 0; i < requests; i++) {
      const res = await edge.fetch("/flaky/Patient/1", { headers: APP });
      expect([200, 503]).toContain(res.status);
      await res.body?.cancel();
    }
    const windows = Math.ceil((Date.now() - started) / 10_000) + 1;
    const retries = upstream.calls("flaky").length - requests;
    // Without a budget every request would retry once (40 retries); with it, 20% of the requests plus the floor per window.
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThanOrEqual(Math.floor(requests * 0.2) + 2 * windows);

    const status = await (await edge.fetch("/status", { headers: OPS })).json() as {
      sources: Array<{ name: string; protection: { retryBudget: { percent: number; timesExhausted: number } } }>;
    };
    const flaky = status.sources.find((s) => s.name === "flaky")!;
    expect(flaky.protection.retryBudget.percent).toBe(20);
    expect(flaky.protection.retryBudget.timesExhausted).toBeGreaterThan(0);
  });
});
