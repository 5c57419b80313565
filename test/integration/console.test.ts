/**
 * The console in a real browser (docs/console.md): the Worker under wrangler's test harness
 * with a healthy source (the Medplum FHIR peer), a failing one (a loopback server answering
 * 500), a misconfigured one, and a channel whose source cannot answer `$events` (so a gap is
 * given up) and one of whose targets keeps failing (so it falls behind). Headless Chromium,
 * the binary from @sparticuz/chromium in the lockfile (Debian's /usr/bin/chromium only as a
 * fallback), signs in, reads the page, watches it refresh, and saves docs/console.png.
 */
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import sparticuz from "@sparticuz/chromium";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { notification } from "../fixtures/notifications.ts";
import { demoPatients, startFhirServer, type FhirServer } from "../peers/fhir-server.ts";
import { startOAuthServer, type OAuthServer } from "../peers/oauth-server.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../peers/webhook-receiver.ts";
import { startEdge, type Edge } from "./support/edge.ts";
import { eventually } from "./support/poll.ts";

const ADMIN_KEY = "ops-console-key-5d1e";
const APP_KEY = "app-key-3c9b";
const CHANNEL_SECRET = "console-channel-secret-77a0";
const CLIENT_SECRET = "console-oauth-secret-1f2e";
// The committed picture in docs/ is refreshed only on request (UPDATE_SCREENSHOT=1), so a test run
// leaves the tracked tree as it was; every run still takes the screenshot, into test-results/.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === "1" ? "docs/console.png" : "test-results/console.png";

let oauth: OAuthServer;
let healthy: FhirServer;
let down: http.Server;
let downPort: number;
let receiver: WebhookReceiver;
let edge: Edge;
let browser: Browser | undefined;

/**
 * @sparticuz/chromium's flags are tuned for AWS Lambda: one process, and web security off.
 * The console is checked in a browser as strict as a person's, and one that survives
 * closing a context.
 */
const UNWANTED_ARGS = new Set(["--single-process", "--disable-web-security", "--allow-running-insecure-content"]);

/** The lockfile's Chromium; Debian's package only where that one cannot start. */
async function launchBrowser(): Promise<Browser> {
  try {
    const args = sparticuz.args.filter((a) => !UNWANTED_ARGS.has(a));
    return await chromium.launch({ executablePath: await sparticuz.executablePath(), args, headless: true });
  } catch (error) {
    if (!existsSync("/usr/bin/chromium")) throw error;
    return chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"], headless: true });
  }
}

/** Polls (bounded) until `check` passes; returns the last value either way. */
interface StatusJson {
  channels: Array<{ name: string; gaps: Array<{ from: number; to: number; outcome: string }>; targets: Array<{ target: string; lastEvent: number | null; failures: number }> }>;
}

beforeAll(async () => {
  oauth = await startOAuthServer({ clients: [{ clientId: "console-edge", secret: CLIENT_SECRET, authMethod: "client_secret_basic" }] });
  healthy = await startFhirServer({ expectAuthorization: async (h) => !!h?.startsWith("Bearer ") && (await oauth.verifyAccessToken(h.slice(7))) });
  await healthy.seed(demoPatients(2));
  down = http.createServer((_req, res) => res.writeHead(500, { "Content-Type": "text/plain" }).end("down for maintenance"));
  await new Promise<void>((resolve) => down.listen(0, "127.0.0.1", resolve));
  downPort = (down.address() as AddressInfo).port;
  receiver = await startWebhookReceiver();
  receiver.control("failing", { down: true, status: 503 });
  const channels = {
    admissions: {
      source: "records",
      topic: "http://hl7.org/SubscriptionTopic/admission",
      secret: "env:CHANNEL_SECRET",
      gapGracePeriod: 0,
      targets: [{ url: receiver.url("ward-app") }, { url: receiver.url("failing"), maxBackoff: 2 }],
    },
  };
  edge = await startEdge(
    {
      PROXY_API_KEYS: `ops:${ADMIN_KEY},app:${APP_KEY}`,
      PROXY_ADMIN_CLIENTS: "ops",
      FHIR_SOURCE_HEALTHY: `fhir+${healthy.url}?client_id=console-edge&client_secret=env:HEALTHY_SECRET&token_url=${oauth.tokenUrl}`,
      FHIR_SOURCE_RECORDS: `fhir+http://127.0.0.1:${downPort}/fhir?max_attempts=1`,
      FHIR_SOURCE_BROKEN: "fhir://broken.example/r4?max_attempts=zero",
      FHIR_CHANNELS: JSON.stringify(channels),
    },
    { CHANNEL_SECRET, HEALTHY_SECRET: CLIENT_SECRET, CONSOLE_SESSION_SECRET: "console-session-secret-for-the-browser-test" },
  );
  // One request through the healthy source, so it holds a token whose expiry the console shows.
  expect((await edge.fetch("/healthy/Patient?_count=1", { headers: { "X-Api-Key": APP_KEY } })).status).toBe(200);
  // Event 1, then 4: events 2 and 3 are missing, and the source answers $events with 500.
  const subscription = `http://127.0.0.1:${downPort}/fhir/Subscription/adm-1`;
  for (const events of [[1], [4]]) {
    const res = await edge.fetch("/webhooks/admissions", {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json", "X-Api-Key": CHANNEL_SECRET },
      body: JSON.stringify(notification("R5", "event-notification", { events, subscription })),
    });
    expect(res.status).toBe(200);
  }
  const status = await eventually(
    async () => (await (await edge.fetch("/status", { headers: { "X-Api-Key": ADMIN_KEY } })).json()) as StatusJson,
    (s) => {
      const ch = s.channels.find((c) => c.name === "admissions");
      return !!ch && ch.gaps.length > 0 && ch.targets.some((t) => t.target.endsWith("/failing") && t.failures > 1) && ch.targets.some((t) => t.target.endsWith("/ward-app") && t.lastEvent === 4);
    },
    { timeoutMs: 30_000, everyMs: 200 },
  );
  const channel = status.channels.find((c) => c.name === "admissions")!;
  expect(channel.gaps[0]).toMatchObject({ from: 2, to: 3 });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await edge?.close();
  await receiver?.close();
  await healthy?.close();
  await oauth?.close();
  await new Promise<void>((resolve) => {
    down?.close(() => resolve());
    down?.closeAllConnections();
  });
});

describe("console in a real browser (headless Chromium)", () => {
  it("signs in with the admin key, shows every source and the channel's trouble, refreshes in place, signs out", async () => {
    const origin = new URL(edge.url).origin;
    const context = await browser!.newContext({ viewport: { width: 1040, height: 900 } });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    const foreignRequests: string[] = [];
    page.on("console", (msg) => {
      if (msg.type() === "error" || msg.type() === "warning") consoleErrors.push(msg.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    page.on("request", (request) => {
      const url = request.url();
      if (!url.startsWith("data:") && new URL(url).origin !== origin) foreignRequests.push(url);
    });

    // Not signed in: the console sends the browser to its form; the key goes in the body.
    await page.goto(`${edge.url}status`);
    expect(new URL(page.url()).pathname).toBe("/admin/console/sign-in");
    await page.fill("#credential", ADMIN_KEY);
    await Promise.all([page.waitForURL(`${edge.url}status`), page.click("button[type=submit]")]);
    expect(page.url()).not.toContain(ADMIN_KEY);

    const cookies = await context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: "__Host-fhir-edge-console", httpOnly: true, secure: true, sameSite: "Strict", path: "/" });
    expect(await page.evaluate(() => document.cookie)).toBe("");

    const healthySource = page.locator('[data-source="healthy"]');
    await expect.poll(() => healthySource.textContent()).toContain("reachable");
    const healthyText = (await healthySource.textContent())!;
    expect(healthyText).toContain("HTTP 200");
    expect(healthyText).toContain("client-credentials");
    expect(healthyText).toMatch(/token\s*expires in [1-5] min/);
    expect(healthyText).not.toContain(CLIENT_SECRET);
    const failing = await page.locator('[data-source="records"]').textContent();
    expect(failing).toContain("unreachable");
    expect(failing).toContain("HTTP 500");
    const broken = await page.locator('[data-source="broken"]').textContent();
    expect(broken).toContain("misconfigured");
    expect(broken).toContain("max_attempts");

    const channel = page.locator('[data-channel="admissions"]');
    expect(await channel.locator("h3").textContent()).toContain("1 target behind");
    const behind = channel.locator('tr[data-target$="/failing"]');
    expect(await behind.getAttribute("class")).toBe("behind");
    expect(await behind.textContent()).toContain("503");
    expect(await channel.locator('tr[data-target$="/ward-app"]').getAttribute("class")).toBe("");
    const gap = await channel.locator('[data-gap="2-3"]').textContent();
    expect(gap).toContain("$events unsupported or failed (HTTP 500)");
    expect(await channel.getByRole("link", { name: "Replay the retained notifications" }).getAttribute("href")).toBe("/admin/channels/admissions/events?since=0");
    expect(await behind.getByRole("link").getAttribute("href")).toBe("/admin/channels/admissions/events?since=0");
    expect(await channel.locator('tr[data-target$="/ward-app"]').getByRole("link").getAttribute("href")).toBe("/admin/channels/admissions/events?since=4");

    // The page refreshes itself without a reload: a mark left on the window survives an update.
    await page.evaluate(() => Object.assign(window, { consoleMark: 1 }));
    await page.waitForFunction(() => document.getElementById("live-note")?.textContent?.startsWith("Updated"), undefined, { timeout: 20_000 });
    expect(await page.evaluate(() => (window as unknown as { consoleMark?: number }).consoleMark)).toBe(1);
    expect(await page.locator('[data-gap="2-3"]').count()).toBe(1);

    // Following a replay link works with the session cookie alone.
    const replay = await page.request.get(`${edge.url}admin/channels/admissions/events?since=0`);
    expect(replay.status()).toBe(200);
    expect(((await replay.json()) as { resourceType: string }).resourceType).toBe("Bundle");

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await Promise.all([page.waitForURL(/\/admin\/console\/sign-in$/), page.click("header form button")]);
    expect(await context.cookies()).toHaveLength(0);
    await page.goto(`${edge.url}status`);
    expect(new URL(page.url()).pathname).toBe("/admin/console/sign-in");

    expect(consoleErrors).toEqual([]);
    expect(foreignRequests).toEqual([]);
    await context.close();
  }, 90_000);

  it("is readable on a phone: no sideways scrolling of the page, sources stacked", async () => {
    const context = await browser!.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
    const page = await context.newPage();
    await page.goto(`${edge.url}admin/console/sign-in`);
    await page.fill("#credential", ADMIN_KEY);
    await Promise.all([page.waitForURL(`${edge.url}status`), page.click("button[type=submit]")]);
    const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, view: window.innerWidth }));
    expect(widths.doc).toBeLessThanOrEqual(widths.view);
    const boxes = await Promise.all(["healthy", "records"].map((s) => page.locator(`[data-source="${s}"]`).boundingBox()));
    expect(boxes[1]!.y).toBeGreaterThan(boxes[0]!.y);
    await context.close();
  }, 60_000);
});
