#!/usr/bin/env node
/**
 * `npm start`: the edge on this machine with no account and no internet.
 *
 * Starts the demo upstream (the same real FHIR server the tests use, Medplum's
 * router over an in-memory store, seeded with a few patients and
 * observations) on loopback, a local webhook receiver that verifies and
 * prints every delivery, then `wrangler dev` in front of them with local KV
 * and Durable Objects, a demo API key and a demo subscription channel, and
 * prints curl lines that work as pasted and the console's URL. Ctrl-C stops
 * all of it.
 *
 * Environment: PORT (edge, default 8787), DEMO_API_KEY (default demo-key).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Webhook } from "standardwebhooks";
import { demoObservations, demoPatients, startFhirServer } from "../test/peers/fhir-server.ts";

const port = Number(process.env.PORT ?? 8787);
const apiKey = process.env.DEMO_API_KEY ?? "demo-key";
const edge = `http://127.0.0.1:${port}`;
// Demo-only secrets: the channel's (the FHIR server shows it to the edge) and the target's signing
// key, written as Standard Webhooks writes one: whsec_ and the key's bytes in base64.
const channelSecret = "demo-channel-secret";
const signingSecret = "whsec_Zmhpci1lZGdlIGRlbW8gc2lnbmluZyBrZXkgKGxvY2FsIG9ubHkp";

const upstream = await startFhirServer();
const patients = await upstream.seed(demoPatients(8));
await upstream.seed(demoObservations(patients, 3));
console.log(`demo FHIR server (Medplum router, in memory): ${upstream.url}  (${patients.length} patients)`);

/**
 * Checks one delivery the way a receiver written from docs/relay.md does: the
 * Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`) verified by the `standardwebhooks` library, which also
 * refuses a timestamp outside its tolerance (a replayed capture).
 * @returns the delivery's `webhook-id` (stable across retries: the
 *   idempotency key), or undefined when it does not verify
 */
const webhook = new Webhook(signingSecret);
function verifyDelivery(headers, body) {
  try {
    webhook.verify(body, headers);
    return String(headers["webhook-id"]);
  } catch {
    return undefined;
  }
}

/** A sample R5 notification for the demo channel: one event, numbered `n`, about a demo patient. */
function sampleNotification(n) {
  const at = new Date().toISOString();
  const focus = `${upstream.url}/Patient/${patients[(n - 1) % patients.length].id}`;
  return {
    resourceType: "Bundle",
    id: `demo-notification-${n}`,
    type: "subscription-notification",
    timestamp: at,
    entry: [
      {
        fullUrl: `urn:uuid:${crypto.randomUUID()}`,
        resource: {
          resourceType: "SubscriptionStatus",
          status: "active",
          type: "event-notification",
          eventsSinceSubscriptionStart: String(n),
          notificationEvent: [{ eventNumber: String(n), timestamp: at, focus: { reference: focus } }],
          subscription: { reference: `${upstream.url}/Subscription/demo` },
          topic: "http://example.org/SubscriptionTopic/patient-admission",
        },
      },
    ],
  };
}

// The curl line posts this file; after each delivery it holds the next event, so the same line works again.
const samplePath = join(tmpdir(), `fhir-edge-demo-notification-${port}.json`);
const writeSample = (n) => writeFileSync(samplePath, JSON.stringify(sampleNotification(n), null, 2));
writeSample(1);

const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const id = verifyDelivery(req.headers, body);
    if (id === undefined) {
      console.log("[receiver] REFUSED a delivery: its signature does not verify");
      res.writeHead(401).end();
      return;
    }
    let events = [];
    try {
      const status = JSON.parse(body.toString("utf8")).entry?.[0]?.resource ?? {};
      events = (status.notificationEvent ?? []).map((e) => `#${e.eventNumber} ${e.focus?.reference ?? ""}`.trim());
      const last = Math.max(0, ...(status.notificationEvent ?? []).map((e) => Number(e.eventNumber)).filter(Number.isFinite));
      if (last > 0) writeSample(last + 1);
    } catch {
      // still verified; just not a bundle we can summarise
    }
    console.log(`[receiver] verified delivery (Standard Webhooks, webhook-id ${id}): ${events.join(", ") || `${body.length} bytes`}`);
    res.writeHead(204).end();
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/deliveries`;
console.log(`demo webhook receiver (verifies each delivery's signature): ${receiverUrl}`);

const channels = {
  demo: {
    source: "demo",
    topic: "http://example.org/SubscriptionTopic/patient-admission",
    secret: "env:DEMO_CHANNEL_SECRET",
    targets: [{ url: receiverUrl, signingSecret: "env:DEMO_SIGNING_SECRET" }],
  },
};
const vars = {
  PROXY_AUTH: "api-key",
  PROXY_API_KEYS: `demo:${apiKey}`,
  PROXY_ADMIN_CLIENTS: "demo",
  ALLOW_INSECURE_HTTP: "true",
  FHIR_SOURCE_DEMO: `fhir+${upstream.url}`,
  FHIR_CHANNELS: JSON.stringify(channels),
  DEMO_CHANNEL_SECRET: channelSecret,
  DEMO_SIGNING_SECRET: signingSecret,
};
// wrangler's package exports hide bin/; find it beside the resolved entry point.
const wranglerBin = join(dirname(createRequire(import.meta.url).resolve("wrangler")), "..", "bin", "wrangler.js");
// A fresh local state per run, like the in-memory demo server: the demo channel starts at event 1.
const state = mkdtempSync(join(tmpdir(), "fhir-edge-demo-state-"));
const args = [wranglerBin, "dev", "--ip", "127.0.0.1", "--port", String(port), "--persist-to", state, "--show-interactive-dev-session=false"];
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
    console.log(`
fhir-edge is running at ${edge}, proxying source "demo" to the demo FHIR server.
Try:

  curl -s -H "X-Api-Key: ${apiKey}" "${edge}/demo/Patient?_count=3"

  curl -s -H "Authorization: Bearer ${apiKey}" "${edge}/demo/Patient/demo-patient-1"
  curl -s -H "X-Api-Key: ${apiKey}" "${edge}/status"
  curl -s "${edge}/demo/metadata"

The relay: channel "demo" delivers to the local receiver above, which prints each delivery it verified.
Post a sample notification as the FHIR server would (again for the next event):

  curl -s -X POST -H "Content-Type: application/fhir+json" -H "X-Api-Key: ${channelSecret}" --data-binary @${samplePath} "${edge}/webhooks/demo"

The console: open ${edge}/status in a browser and sign in with the demo admin key: ${apiKey}

Ctrl-C stops the edge, the receiver and the demo server.
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
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
  rmSync(state, { recursive: true, force: true });
  rmSync(samplePath, { force: true });
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 0));
