/**
 * The console (docs/console.md): `/status` as a page for browsers and JSON for everyone else,
 * the sign-in form and its session cookie, and the page's security headers. Inside workerd,
 * with the edge built by createEdge and its upstream probe answered in-process (the real
 * browser and real peers are in test/integration/console.test.ts).
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createEdge } from "../../../../src/app.ts";
import { prefersHtml } from "../../../../src/admin/console/negotiate.ts";
import { StatusView } from "../../../../src/admin/console/status-view.tsx";
import { SESSION_COOKIE, SESSION_TTL_SECONDS } from "../../../../src/auth/inbound/session-cookie.ts";
import type { ForwardDeps } from "../../../../src/upstream/forward.ts";

const SESSION_SECRET = "console-session-secret-for-tests-0123456789";
const ENV = {
  PROXY_API_KEYS: "app:app-key-1,ops:ops-key-2",
  PROXY_ADMIN_CLIENTS: "ops",
  CONSOLE_SESSION_SECRET: SESSION_SECRET,
  FHIR_SOURCE_EHR: "fhir://ehr.example/fhir/R4?token=UPSTREAM-TOKEN-XYZ",
  FHIR_SOURCE_BROKEN: "fhir://broken.example/r4?max_attempts=zero",
};
const ORIGIN = "https://edge.example";
const HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

function edge(now = T0) {
  const deps: Partial<ForwardDeps> = {
    fetch: async () => new Response('{"resourceType":"CapabilityStatement"}', { headers: { "Content-Type": "application/fhir+json" } }),
    now: () => now,
  };
  const app = createEdge({ deps });
  return (path: string, init: RequestInit = {}) => app.request(`${ORIGIN}${path}`, init, ENV);
}

function signIn(call: ReturnType<typeof edge>, credential: string, origin: string | null = ORIGIN) {
  return call("/admin/console/sign-in", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", ...(origin ? { Origin: origin } : {}) },
    body: new URLSearchParams({ credential }).toString(),
    redirect: "manual",
  });
}

/** The `name=value` part of a Set-Cookie, as a browser would send it back. */
const cookieOf = (res: Response) => res.headers.get("Set-Cookie")!.split(";")[0]!;

async function signedIn(now = T0): Promise<string> {
  const res = await signIn(edge(now), "ops-key-2");
  expect(res.status).toBe(303);
  return cookieOf(res);
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { issue: Array<{ details: { coding: Array<{ code: string }> } }> };
  return body.issue[0]!.details.coding[0]!.code;
}

describe("console: one /status, HTML for browsers and JSON for everyone else", () => {
  it("answers a browser's Accept with the page and curl's */* with JSON, from the same data", async () => {
    const call = edge();
    const page = await call("/status", { headers: { "X-Api-Key": "ops-key-2", Accept: HTML } });
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toMatch(/^text\/html/);
    const text = await page.text();
    expect(text.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(text).toContain('data-source="ehr"');
    expect(text).toContain('data-source="broken"');
    expect(text).toContain("max_attempts");

    for (const accept of ["*/*", "application/json", "application/fhir+json, text/html;q=0.5", ""]) {
      const res = await call("/status", { headers: { "X-Api-Key": "ops-key-2", ...(accept ? { Accept: accept } : {}) } });
      expect(res.headers.get("Content-Type"), accept).toMatch(/^application\/json/);
      const json = (await res.json()) as { sources: Array<{ name: string }> };
      expect(json.sources.map((s) => s.name)).toEqual(["broken", "ehr"]);
    }
  });

  it("serves the same at / for admin clients", async () => {
    const res = await edge()("/", { headers: { "X-Api-Key": "ops-key-2", Accept: HTML } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('data-source="ehr"');
    const json = await edge()("/", { headers: { "X-Api-Key": "ops-key-2" } });
    expect(((await json.json()) as { sources: unknown[] }).sources).toHaveLength(2);
  });

  it("prefers HTML only when text/html is named and ranks above JSON", () => {
    expect(prefersHtml(HTML)).toBe(true);
    expect(prefersHtml("text/html")).toBe(true);
    expect(prefersHtml("*/*")).toBe(false);
    expect(prefersHtml(undefined)).toBe(false);
    expect(prefersHtml("application/json, text/html")).toBe(false);
    expect(prefersHtml("text/html;q=0")).toBe(false);
    expect(prefersHtml("application/json;q=0.5, text/html")).toBe(true);
  });
});

describe("console: security headers", () => {
  it("sends a strict Content-Security-Policy whose nonce is the one on the page's only style and script", async () => {
    const res = await edge()("/status", { headers: { "X-Api-Key": "ops-key-2", Accept: HTML } });
    const csp = res.headers.get("Content-Security-Policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("base-uri 'none'");
    expect(csp).toContain("form-action 'self'");
    expect(csp).toContain("connect-src 'self'");
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)![1]!;
    expect(csp).toContain(`style-src 'nonce-${nonce}'`);
    const text = await res.text();
    const scripts = [...text.matchAll(/<script([^>]*)>/g)].map((m) => m[1]);
    expect(scripts).toEqual([` nonce="${nonce}"`]);
    expect([...text.matchAll(/<style([^>]*)>/g)].map((m) => m[1])).toEqual([` nonce="${nonce}"`]);
    expect(text).not.toMatch(/ style="/);
    expect(text).not.toMatch(/(src|href)="https?:/);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
  });

  it("uses a fresh nonce per response", async () => {
    const csp = async () => (await edge()("/status", { headers: { "X-Api-Key": "ops-key-2", Accept: HTML } })).headers.get("Content-Security-Policy");
    expect(await csp()).not.toBe(await csp());
  });

  it("never puts a token, key or secret in the page", async () => {
    const cookie = await signedIn();
    const text = await (await edge()("/status", { headers: { Cookie: cookie, Accept: HTML } })).text();
    for (const secret of ["UPSTREAM-TOKEN-XYZ", "ops-key-2", "app-key-1", SESSION_SECRET, cookie.split("=")[1]!]) expect(text).not.toContain(secret);
  });
});

describe("console: sign-in sets a short-lived signed session cookie", () => {
  it("takes an admin key from a form post and sets __Host-, HttpOnly, Secure, SameSite=Strict, Path=/, 30 minutes", async () => {
    const res = await signIn(edge(), "ops-key-2");
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/status");
    const flags = res.headers.get("Set-Cookie")!.split(";").map((p) => p.trim());
    expect(flags[0]!.startsWith(`${SESSION_COOKIE}=`)).toBe(true);
    expect(SESSION_COOKIE.startsWith("__Host-")).toBe(true);
    expect(flags).toEqual(expect.arrayContaining(["HttpOnly", "Secure", "SameSite=Strict", "Path=/", `Max-Age=${SESSION_TTL_SECONDS}`]));
    expect(SESSION_TTL_SECONDS).toBe(1800);
    expect(flags.some((f) => /^Domain=/i.test(f))).toBe(false);
  });

  it("accepts the cookie as an admin credential on /status, the live fragment and the replay route", async () => {
    const cookie = await signedIn();
    const call = edge(T0 + 60_000);
    const json = await call("/status", { headers: { Cookie: cookie } });
    expect(json.status).toBe(200);
    const page = await call("/status", { headers: { Cookie: cookie, Accept: HTML } });
    expect(await page.text()).toContain("signed in as ops");
    const live = await call("/admin/console/live", { headers: { Cookie: cookie, Accept: "text/html" } });
    expect(live.status).toBe(200);
    const fragment = await live.text();
    expect(fragment).toContain('data-source="ehr"');
    expect(fragment).not.toContain("<html");
    // Past authentication: an unknown channel is the replay route's own 404.
    const replay = await call("/admin/channels/none/events?since=0", { headers: { Cookie: cookie } });
    expect(replay.status).toBe(404);
  });

  it("refuses a wrong key: 401, the form again, no cookie", async () => {
    const res = await signIn(edge(), "ops-key-3");
    expect(res.status).toBe(401);
    expect(res.headers.get("Set-Cookie")).toBeNull();
    expect(await res.text()).toContain("That key is not valid.");
    expect((await signIn(edge(), "")).status).toBe(401);
  });

  it("refuses a client that is not an admin: 403 at sign-in, no cookie; 403 on /status with its key", async () => {
    const res = await signIn(edge(), "app-key-1");
    expect(res.status).toBe(403);
    expect(res.headers.get("Set-Cookie")).toBeNull();
    expect(await res.text()).toContain("Client app is not in PROXY_ADMIN_CLIENTS");
    const json = await edge()("/status", { headers: { "X-Api-Key": "app-key-1" } });
    expect(json.status).toBe(403);
    expect(await errorCode(json)).toBe("admin-only");
    const page = await edge()("/status", { headers: { "X-Api-Key": "app-key-1", Accept: HTML } });
    expect(page.status).toBe(403);
    expect(await page.text()).not.toContain("data-source");
  });

  it("refuses a sign-in form over 16 KB even when it is sent chunked, without a Content-Length", async () => {
    const chunk = new TextEncoder().encode("credential=" + "x".repeat(8 * 1024));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await edge()("/admin/console/sign-in", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: ORIGIN }, body });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe("form-too-large");
    expect(res.headers.get("Set-Cookie")).toBeNull();
  });

  it("refuses a sign-in or sign-out posted from another origin, or with no Origin", async () => {
    for (const origin of ["https://evil.example", "null", null]) {
      const res = await signIn(edge(), "ops-key-2", origin);
      expect(res.status, String(origin)).toBe(403);
      expect(res.headers.get("Set-Cookie")).toBeNull();
      expect(await errorCode(res)).toBe("cross-origin-form");
    }
    const out = await edge()("/admin/console/sign-out", { method: "POST", headers: { Origin: "https://evil.example" } });
    expect(out.status).toBe(403);
  });

  it("signs out: the cookie is cleared and the browser goes to the form", async () => {
    const res = await edge()("/admin/console/sign-out", { method: "POST", headers: { Origin: ORIGIN }, redirect: "manual" });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/admin/console/sign-in");
    expect(res.headers.get("Set-Cookie")).toMatch(new RegExp(`^${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict$`));
  });

  it("shows the sign-in form to a browser that is not signed in, and 401 to an API client", async () => {
    const page = await edge()("/status", { headers: { Accept: HTML }, redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("Location")).toBe("/admin/console/sign-in");
    const form = await edge()("/admin/console/sign-in", { headers: { Accept: HTML } });
    const text = await form.text();
    expect(text).toContain('method="post"');
    expect(text).toContain('name="credential"');
    expect(text).toContain('type="password"');
    expect(form.headers.get("Content-Security-Policy")).toContain("default-src 'none'");
    const json = await edge()("/status");
    expect(json.status).toBe(401);
    expect(await errorCode(json)).toBe("missing-credentials");
  });
});

describe("console: a session cookie that is tampered with or expired is refused", () => {
  it("refuses a cookie whose payload or signature was altered", async () => {
    const cookie = await signedIn();
    const [name, value] = [cookie.slice(0, cookie.indexOf("=")), cookie.slice(cookie.indexOf("=") + 1)];
    const [payload, signature] = value.split(".") as [string, string];
    const claims = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/"))) as Record<string, unknown>;
    const forged = btoa(JSON.stringify({ ...claims, sub: "app", exp: (claims.exp as number) + 86_400 }))
      .replaceAll("+", "-")
      .replaceAll("/", "_")
      .replace(/=+$/, "");
    const flipped = signature.slice(0, -2) + (signature.endsWith("AA") ? "BB" : "AA");
    // The same bytes under a lenient decoder: the last character changed only in its unused low bits.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const lowBits = signature.slice(0, -1) + alphabet[alphabet.indexOf(signature.at(-1)!) ^ 1];
    for (const bad of [`${name}=${forged}.${signature}`, `${name}=${payload}.${flipped}`, `${name}=${payload}.${lowBits}`, `${name}=${payload}`, `${name}=garbage`]) {
      const res = await edge()("/status", { headers: { Cookie: bad } });
      expect(res.status, bad).toBe(401);
      expect(await errorCode(res)).toBe("session-invalid");
    }
  });

  it("refuses a cookie signed under another secret", async () => {
    const cookie = await signedIn();
    const app = createEdge({ deps: { now: () => T0 } });
    const res = await app.request(`${ORIGIN}/status`, { headers: { Cookie: cookie } }, { ...ENV, CONSOLE_SESSION_SECRET: "another-secret-entirely-0123456789abcdef" });
    expect(res.status).toBe(401);
  });

  it("refuses a cookie past its 30 minutes, and sends a browser back to sign in", async () => {
    const cookie = await signedIn(T0);
    const later = edge(T0 + (SESSION_TTL_SECONDS + 1) * 1000);
    const res = await later("/status", { headers: { Cookie: cookie } });
    expect(res.status).toBe(401);
    expect(await errorCode(res)).toBe("session-expired");
    const page = await later("/status", { headers: { Cookie: cookie, Accept: HTML }, redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("Location")).toBe("/admin/console/sign-in?expired=1");
    const live = await later("/admin/console/live", { headers: { Cookie: cookie, Accept: "text/html" } });
    expect(live.status).toBe(401);
  });

  it("refuses the cookie of a client whose key was removed since", async () => {
    const cookie = await signedIn();
    const app = createEdge({ deps: { now: () => T0 } });
    const res = await app.request(`${ORIGIN}/status`, { headers: { Cookie: cookie } }, { ...ENV, PROXY_API_KEYS: "app:app-key-1", PROXY_ADMIN_CLIENTS: "ops" });
    expect(res.status).toBe(401);
  });
});

describe("console: mounted under a prefix of another hono app", () => {
  it("keeps the mount path in its links, form actions, refresh URL and redirects", async () => {
    const { Hono } = await import("hono");
    const parent = new Hono();
    parent.route("/fhir", createEdge({ deps: { now: () => T0, fetch: async () => new Response("{}") } }));
    const call = (path: string, init: RequestInit = {}) => parent.request(`${ORIGIN}${path}`, init, ENV);
    const page = await (await call("/fhir/status", { headers: { "X-Api-Key": "ops-key-2", Accept: HTML } })).text();
    expect(page).toContain('action="/fhir/admin/console/sign-out"');
    expect(page).toContain('data-src="/fhir/admin/console/live"');
    const unsigned = await call("/fhir/status", { headers: { Accept: HTML }, redirect: "manual" });
    expect(unsigned.headers.get("Location")).toBe("/fhir/admin/console/sign-in");
    const form = await (await call("/fhir/admin/console/sign-in", { headers: { Accept: HTML } })).text();
    expect(form).toContain('action="/fhir/admin/console/sign-in"');
    const signedIn = await call("/fhir/admin/console/sign-in", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: ORIGIN },
      body: "credential=ops-key-2",
      redirect: "manual",
    });
    expect(signedIn.headers.get("Location")).toBe("/fhir/status");
  });
});

describe("console: sign-in with a JWT (PROXY_AUTH=jwt)", () => {
  afterEach(() => vi.restoreAllMocks());

  it("takes an admin's JWT from the form, and the session ends no later than the token", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256" }] };
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => Response.json(jwks));
    const jwtEnv = { PROXY_AUTH: "jwt", PROXY_JWT_JWKS_URL: "https://idp.example/jwks", PROXY_JWT_ISSUER: "https://idp.example", PROXY_JWT_AUDIENCE: "edge", PROXY_ADMIN_CLIENTS: "ops-robot", CONSOLE_SESSION_SECRET: SESSION_SECRET };
    const sign = (sub: string) =>
      new SignJWT({ scope: "system/*.rs" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer("https://idp.example").setAudience("edge").setSubject(sub).setIssuedAt().setExpirationTime("120s").sign(privateKey);
    const app = createEdge({ deps: { fetch: async () => new Response("{}") } });
    const post = async (credential: string) =>
      app.request(`${ORIGIN}/admin/console/sign-in`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: ORIGIN }, body: new URLSearchParams({ credential }).toString(), redirect: "manual" }, jwtEnv);
    const res = await post(await sign("ops-robot"));
    expect(res.status).toBe(303);
    const maxAge = Number(/Max-Age=(\d+)/.exec(res.headers.get("Set-Cookie")!)![1]);
    expect(maxAge).toBeGreaterThan(60);
    expect(maxAge).toBeLessThanOrEqual(120);
    const status = await app.request(`${ORIGIN}/status`, { headers: { Cookie: cookieOf(res) } }, jwtEnv);
    expect(status.status).toBe(200);
    expect((await post(await sign("analytics-app"))).status).toBe(403);
    expect((await post("not-a-jwt")).status).toBe(401);
  });
});

describe("console: renders defensively from the JSON", () => {
  const render = async (report: unknown) => String(await (StatusView({ report, now: T0, root: "" }) as unknown as { toString(): string | Promise<string> }).toString());

  it("shows fields the relay adds (a target's pending count, WebSocket subscribers, replay reach) when present", async () => {
    const html = await render({
      sources: [],
      channels: [
        {
          name: "adt",
          state: "ok",
          source: "ehr",
          lastEventNumber: 9,
          webSocketSubscribers: 2,
          replayFrom: 4,
          gaps: [],
          targets: [{ target: "https://app.example/hook", lastEvent: 6, pending: 3, failures: 1, nextAttemptAt: new Date(T0 + 4000).toISOString(), lastStatus: "503", dropped: 0, delivered: 6, signing: "standard-webhooks" }],
        },
      ],
    });
    expect(html).toContain("3 behind");
    expect(html).toContain("in 4 s");
    expect(html).toMatch(/web socket subscribers<\/dt><dd>2</);
    expect(html).toMatch(/replay from<\/dt><dd>4</);
    expect(html).toContain("signing: standard-webhooks");
  });

  it("lists the WebSocket inbox's open connections from the channel's subscribers, with each client's acked position", async () => {
    const channel = { name: "adt", state: "ok", source: "ehr", lastEventNumber: 9, gaps: [], targets: [] };
    const html = await render({
      sources: [],
      channels: [
        {
          ...channel,
          subscribers: [
            { client: "ward-app", connectedAt: new Date(T0 - 60_000).toISOString(), acked: 9, sent: 9, stalledSince: null },
            { client: "laptop", connectedAt: new Date(T0 - 60_000).toISOString(), acked: 4, sent: 9, stalledSince: new Date(T0 - 12_000).toISOString() },
          ],
        },
      ],
    });
    expect(html).toMatch(/WebSocket subscribers<\/dt><dd>2: ward-app \(acked 9\), laptop \(acked 4, window full 12 s\)</);
    expect(await render({ sources: [], channels: [{ ...channel, subscribers: [] }] })).toMatch(/WebSocket subscribers<\/dt><dd>none connected</);
  });

  it("does not throw on missing or odd fields", async () => {
    for (const report of [null, {}, { sources: "x", channels: [null, 3, { name: 5 }] }, { sources: [{ name: "a", state: "ok", reachability: "?" }], configurationErrors: [{}] }]) {
      expect(await render(report)).toContain("Sources");
    }
  });
});
