/**
 * Many requests find the upstream token due at the same moment
 * (docs/upstream-auth.md#the-token-cache): every one is answered, and the
 * token endpoint is still called once per refresh. The Worker runs as deployed (the dry-run
 * build in plain workerd, as `npm run bench` runs it), because that is where
 * it failed: a lookup promise shared between requests hung the requests
 * waiting on it once the request that started it was done (500, "the
 * Worker's code had hung"), at every refresh under load.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildForDeploy } from "../../bench/bundle-size.ts";
import { spawnPinned, stopAll, waitForLine } from "../../bench/processes.ts";
import { BENCH_CLIENT_ID, BENCH_CLIENT_SECRET, startTokenEndpoint, type TokenEndpoint } from "../../bench/token-endpoint.ts";
import { startWorkerd } from "../../bench/workerd.ts";

const KEY = "refresh-test-key";
/** Seconds; refreshed min(60 s, 10%) before expiry, so every 1.8 s. */
const TTL = 2;
const REFRESH_EVERY_MS = TTL * 900;
/** Long enough for several refreshes: the failure showed from the third or fourth on. */
const RUN_MS = 10_000;
const CONCURRENT = 32;
const dir = mkdtempSync(join(tmpdir(), "fhir-edge-refresh-"));
let token: TokenEndpoint;
let url: string;

beforeAll(async () => {
  await buildForDeploy(join(dir, "edge"));
  const upstream = spawnPinned(process.execPath, ["bench/upstream.ts"], undefined, { stdio: ["pipe", "pipe", "inherit"] });
  const { port } = await waitForLine(upstream.stdout!, (l) => JSON.parse(l) as { port: number }, 15_000, "the upstream");
  upstream.stdout!.resume();
  token = await startTokenEndpoint(TTL);
  const workerd = await startWorkerd({
    edgeDir: join(dir, "edge"),
    configPath: join(dir, "workerd.capnp"),
    passthroughScript: join(process.cwd(), "bench/passthrough-worker.js"),
    kvScript: join(process.cwd(), "bench/kv-worker.js"),
    wrangler: unstable_readConfig({ config: "wrangler.toml" }),
    edgeBindings: {
      PROXY_API_KEYS: `tests:${KEY}`,
      ALLOW_INSECURE_HTTP: "true",
      FHIR_SOURCE_EHR: `fhir+http://127.0.0.1:${port}/oauth/fhir/R4?client_id=${BENCH_CLIENT_ID}&client_secret=env:EHR_SECRET&token_url=${token.url}`,
      EHR_SECRET: BENCH_CLIENT_SECRET,
      TOKEN_CACHE_KEY: "a-test-key-for-sealing-tokens-in-kv",
    },
    upstreamOrigin: `http://127.0.0.1:${port}`,
    core: undefined,
  });
  url = `${workerd.edgeUrl}ehr/Patient/bench-1`;
});

afterAll(async () => {
  await token?.close();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("token refresh under load, as deployed", () => {
  it(`${CONCURRENT} clients in a loop across several refreshes: every request answered, one token fetch per refresh`, async () => {
    const get = () => fetch(url, { headers: { "X-Api-Key": KEY } });
    expect((await get()).status).toBe(200);
    const end = Date.now() + RUN_MS;
    const failures: number[] = [];
    let answered = 0;
    await Promise.all(
      Array.from({ length: CONCURRENT }, async () => {
        while (Date.now() < end) {
          const res = await get();
          await res.arrayBuffer();
          answered++;
          if (res.status !== 200) failures.push(res.status);
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(CONCURRENT * 10);
    const windows = Math.floor((Date.now() - token.calls[0]!) / REFRESH_EVERY_MS) + 1;
    expect(token.calls.length).toBeGreaterThanOrEqual(4);
    expect(token.calls.length).toBeLessThanOrEqual(windows);
    expect(token.refused).toBe(0);
  });
});
