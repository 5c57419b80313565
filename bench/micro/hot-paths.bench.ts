/**
 * Micro-benchmarks of the edge's hot pure functions, run inside workerd
 * (the vitest plugin), where V8's flags and the runtime match production.
 * Each writes its result to bench/out/micro/<name>.json for the report.
 * Cheap functions run in batches, so each sample is long enough for
 * workerd's coarse clock; the report divides by the batch.
 */
import { test } from "vitest";
import * as connectionString from "../../src/config/connection-string.ts";
import * as source from "../../src/config/source.ts";
import * as retry from "../../src/upstream/retry.ts";
import * as rewriteUrls from "../../src/upstream/rewrite-urls.ts";
import * as sequence from "../../src/subscriptions/channel/sequencer.ts";
import { searchsetJson } from "../fixtures.ts";
import { BACKOFF_BATCH, CONNECTION_BATCH, GAP_BATCH, MICRO_UPSTREAM } from "./batches.ts";

// Bound once: module namespace getters on the hot loop would be measured too.
const { parseConnectionString } = connectionString;
const { resolveSource } = source;
const { backoffDelay, retryDelay } = retry;
const { createUrlRewriter } = rewriteUrls;
const { decideEvents, countGap } = sequence;

const UPSTREAM = MICRO_UPSTREAM;
const EDGE = "https://edge.example.org/bench";
// As the edge gets them: UTF-8 bytes, decoded to text, rewritten, encoded again
// for the Response. (Timing the string step alone flatters it: V8 builds the
// result as a rope and only pays for it when the bytes are written.)
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bundle = encoder.encode(searchsetJson(UPSTREAM));
const foreign = encoder.encode(searchsetJson("https://elsewhere.example.org/fhir/R4"));
const rewriter = createUrlRewriter(UPSTREAM, EDGE, "/fhir/R4");
const OPTIONS = { time: 1000, warmupTime: 200 };
const out = (name: string) => ({ writeResult: `bench/out/micro/${name}.json` });

let sink = 0;

test("rewriting a 200 KB searchset: bytes to text, URLs rewritten, text to bytes", async ({ bench }) => {
  await bench("rewrite-bundle", out("rewrite-bundle"), () => {
    sink += encoder.encode(rewriter.rewriteText(decoder.decode(bundle))).length;
  }).run(OPTIONS);
});

test("a 200 KB body without the upstream base: the same steps, nothing to replace", async ({ bench }) => {
  await bench("rewrite-no-match", out("rewrite-no-match"), () => {
    sink += encoder.encode(rewriter.rewriteText(decoder.decode(foreign))).length;
  }).run(OPTIONS);
});

test("the floor of any text rewrite: decode and encode the 200 KB, nothing else", async ({ bench }) => {
  await bench("decode-encode", out("decode-encode"), () => {
    sink += encoder.encode(decoder.decode(bundle)).length;
  }).run(OPTIONS);
});

test("for comparison: JSON.parse + JSON.stringify of the same Bundle", async ({ bench }) => {
  await bench("json-roundtrip", out("json-roundtrip"), () => {
    sink += encoder.encode(JSON.stringify(JSON.parse(decoder.decode(bundle)))).length;
  }).run(OPTIONS);
});

const CONNECTION = "fhir+http://ehr.example.org:8443/fhir/R4?client_id=edge&client_secret=env:EHR_SECRET&token_url=https://ehr.example.org/oauth/token&scope=system/*.rs&max_attempts=3&retry_backoff_factor=0.25&timeout=10&header.X-Tenant=acme";
const CTX = { env: { EHR_SECRET: "s3cret" }, allowInsecureHttp: true };

test("parsing a connection string (parse + resolve)", async ({ bench }) => {
  await bench("connection-string", out("connection-string"), () => {
    for (let i = 0; i < CONNECTION_BATCH; i++) {
      const parsed = parseConnectionString("ehr", CONNECTION);
      if (!parsed.ok) throw new Error("bench connection string is invalid");
      const resolved = resolveSource("ehr", parsed.value, CTX);
      if (!resolved.ok) throw new Error(JSON.stringify(resolved.error));
      sink += resolved.value.retry.maxAttempts;
    }
  }).run(OPTIONS);
});

const POLICY = { backoffFactor: 0.5, maxBackoffWait: 60 };

test("computing a backoff (with and without Retry-After)", async ({ bench }) => {
  await bench("backoff", out("backoff"), () => {
    for (let i = 0; i < BACKOFF_BATCH; i += 2) {
      sink += backoffDelay((i & 7) + 1, POLICY, Math.random);
      sink += retryDelay(2, POLICY, "3", 0, Math.random);
    }
  }).run(OPTIONS);
});

// A notification's event numbers against the channel's last event: in order,
// a duplicate, a gap to hold, and a heartbeat's count beyond what was seen.
const NOTIFICATIONS: Array<[number, number[]]> = [
  [41, [42]],
  [41, [40, 41]],
  [41, [45, 46]],
  [41, [42, 43, 44]],
];

test("deciding a sequence gap (decideEvents + countGap)", async ({ bench }) => {
  await bench("sequence-gap", out("sequence-gap"), () => {
    for (let i = 0; i < GAP_BATCH; i += 4) {
      for (const [last, events] of NOTIFICATIONS) sink += decideEvents(last, events).duplicates.length;
      sink += countGap(41, 44 + (i & 3))?.to ?? 0;
    }
  }).run(OPTIONS);
});

test("results are used", () => {
  if (sink === 0) throw new Error("nothing was computed");
});
