#!/usr/bin/env node
/**
 * `npm start`: the edge on this machine with no account and no internet.
 *
 * Starts the demo upstream (the same real FHIR server the tests use, Medplum's
 * router over an in-memory store, seeded with a few patients and
 * observations) on loopback, then `wrangler dev` in front of it with local KV
 * and Durable Objects, a demo API key, and prints a curl line that works as
 * pasted. Ctrl-C stops both.
 *
 * Environment: PORT (edge, default 8787), DEMO_API_KEY (default demo-key).
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { demoObservations, demoPatients, startFhirServer } from "../test/peers/fhir-server.ts";

const port = Number(process.env.PORT ?? 8787);
const apiKey = process.env.DEMO_API_KEY ?? "demo-key";

const upstream = await startFhirServer();
const patients = await upstream.seed(demoPatients(8));
await upstream.seed(demoObservations(patients, 3));
console.log(`demo FHIR server (Medplum router, in memory): ${upstream.url}  (${patients.length} patients)`);

const vars = {
  PROXY_AUTH: "api-key",
  PROXY_API_KEYS: `demo:${apiKey}`,
  PROXY_ADMIN_CLIENTS: "demo",
  ALLOW_INSECURE_HTTP: "true",
  FHIR_SOURCE_DEMO: `fhir+${upstream.url}`,
};
// wrangler's package exports hide bin/; find it beside the resolved entry point.
const wranglerBin = join(dirname(createRequire(import.meta.url).resolve("wrangler")), "..", "bin", "wrangler.js");
const args = [wranglerBin, "dev", "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false"];
for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);

// Its own process group, so stopping reaches wrangler's children (workerd) too.
const wrangler = spawn(process.execPath, args, {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  detached: true,
});
let announced = false;
wrangler.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (!announced && /Ready on/i.test(String(chunk))) {
    announced = true;
    const edge = `http://127.0.0.1:${port}`;
    console.log(`
fhir-edge is running at ${edge}, proxying source "demo" to the demo FHIR server.
Try:

  curl -s -H "X-Api-Key: ${apiKey}" "${edge}/demo/Patient?_count=3"

  curl -s -H "Authorization: Bearer ${apiKey}" "${edge}/demo/Patient/demo-patient-1"
  curl -s -H "X-Api-Key: ${apiKey}" "${edge}/status"
  curl -s "${edge}/demo/metadata"

Ctrl-C stops the edge and the demo server.
`);
  }
});

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  if (wrangler.exitCode === null) {
    const exited = new Promise((resolve) => wrangler.once("exit", resolve));
    try {
      process.kill(-wrangler.pid, "SIGINT");
    } catch {
      // already gone
    }
    const forced = setTimeout(() => {
      try {
        process.kill(-wrangler.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, 5000);
    await exited;
    clearTimeout(forced);
  }
  await upstream.close();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 0));
