/**
 * The WebSocket inbox (docs/inbox.md; docs/contract.md, `GET /channels/<channel>/ws`): the real
 * Worker under wrangler's test harness, read with Node's own WebSocket client. Events are posted
 * by the test as the source would post them.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestHarness } from "wrangler";
import { eventNumbersOf, notification } from "../fixtures/notifications.ts";
import { eventually, sleep } from "./support/poll.ts";

const SECRET = "inbox-channel-secret";
const ADMIN = "inbox-admin-key";
const APP = "inbox-app-key";
const OTHER = "inbox-other-key";

let harness: ReturnType<typeof createTestHarness>;
let base: URL;

const channel = (extra: Record<string, unknown> = {}) => ({
  source: "ehr",
  topic: "http://hl7.org/SubscriptionTopic/admission",
  secret: "env:CHANNEL_SECRET",
  subscribers: ["app"],
  ...extra,
});

beforeAll(async () => {
  harness = createTestHarness({
    workers: [
      {
        configPath: "./wrangler.toml",
        vars: {
          ALLOW_INSECURE_HTTP: "true",
          ACCESS_LOG: "off",
          PROXY_API_KEYS: `ops:${ADMIN},app:${APP},other:${OTHER}`,
          PROXY_ADMIN_CLIENTS: "ops",
          // Never called: every test posts events in order, so there is no gap to recover.
          FHIR_SOURCE_EHR: "fhir+http://127.0.0.1:9/fhir",
          FHIR_CHANNELS: JSON.stringify({
            live: channel(),
            since: channel(),
            two: channel(),
            access: channel(),
            nap: channel(),
            browser: channel(),
            // The source is never asked: the missing event arrives within the grace period.
            held: channel({ gapGracePeriod: 60 }),
            bundles: channel({ sequencing: "none" }),
          }),
        },
        secrets: { CHANNEL_SECRET: SECRET, CONSOLE_SESSION_SECRET: "inbox-console-session-secret-for-tests" },
      },
    ],
  });
  base = (await harness.listen()).url;
});

afterAll(async () => {
  await harness?.close();
});

/** Posts events as the source would; strict channels get them in order. */
async function post(ch: string, events: number[]): Promise<void> {
  const res = await fetch(new URL(`/webhooks/${ch}`, base), {
    method: "POST",
    headers: { "Content-Type": "application/fhir+json", "X-Api-Key": SECRET },
    body: JSON.stringify(notification("R5", "event-notification", { events })),
  });
  expect(res.status).toBe(200);
}

interface Frame {
  channel: string;
  delivery: number;
  events?: string;
  position: number;
  bundle: unknown;
}

/** A client of the inbox: every frame it got, and how it closed. */
class InboxClient {
  readonly frames: Frame[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => this.frames.push(JSON.parse(String(e.data)) as Frame));
    ws.addEventListener("close", (e) => (this.closed = { code: e.code, reason: e.reason }));
  }

  static open(ch: string, key: string, since?: number, at: URL = base, headers: Record<string, string> = { "X-Api-Key": key }): Promise<InboxClient> {
    const url = new URL(`/channels/${ch}/ws${since === undefined ? "" : `?since=${since}`}`, at);
    url.protocol = "ws:";
    // Node's WebSocket takes headers: the key goes on the upgrade request, never in the URL.
    const ws = new WebSocket(url, { headers } as unknown as string[]);
    const client = new InboxClient(ws);
    return new Promise((resolve, reject) => {
      ws.addEventListener("open", () => resolve(client));
      ws.addEventListener("error", () => reject(new Error("upgrade refused")));
    });
  }

  /** Waits (bounded) until at least `n` frames arrived. */
  async received(n: number, ms = 10_000): Promise<Frame[]> {
    return eventually(() => this.frames, (f) => f.length >= n || this.closed !== undefined, { timeoutMs: ms, everyMs: 20 });
  }

  /** The event numbers in every Bundle received, in order. */
  events(): number[] {
    return this.frames.flatMap((f) => eventNumbersOf(f.bundle));
  }

  ack(position: number): void {
    this.ws.send(JSON.stringify({ ack: position }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const done = new Promise((r) => this.ws.addEventListener("close", r));
    this.ws.close(1000, "done");
    await done;
  }
}

/** An upgrade request with node:http, to see what the edge answers when it refuses one. */
function refusedUpgrade(path: string, headers: Record<string, string>, at: URL = base): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL(path, at), { headers: { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", ...headers } });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      reject(new Error("upgraded"));
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

/** Polls (bounded) until `check` passes. */
async function subscribersOf(ch: string): Promise<Array<{ client: string; acked: number; sent: number }>> {
  const status = (await (await fetch(new URL("/status", base), { headers: { "X-Api-Key": ADMIN } })).json()) as { channels: Array<{ name: string; subscribers?: Array<{ client: string; acked: number; sent: number }> }> };
  return status.channels.find((c) => c.name === ch)?.subscribers ?? [];
}

describe("live events: each new event as accepted, in order, one notification Bundle per message", () => {
  it("a subscriber gets every event posted after it connected, framed with its range and position", async () => {
    const client = await InboxClient.open("live", APP);
    await post("live", [1]);
    await post("live", [2, 3]);
    await post("live", [4]);
    const frames = await client.received(3);
    expect(client.events()).toEqual([1, 2, 3, 4]);
    expect(frames.map((f) => [f.events, f.position])).toEqual([["1-1", 1], ["2-3", 3], ["4-4", 4]]);
    expect(frames[1]).toMatchObject({ channel: "live", bundle: notification("R5", "event-notification", { events: [2, 3] }) });
    expect(frames.map((f) => f.delivery)).toEqual([...frames.map((f) => f.delivery)].sort((a, b) => a - b));
    await client.close();
  });

  it("an event held past a missing one is not sent until the missing one is in; then both, in order", async () => {
    const client = await InboxClient.open("held", APP);
    await post("held", [1]);
    await post("held", [3]);
    await client.received(1);
    // Event 3 waits for 2 in the channel's held table; the inbox only reads notifications accepted in order.
    await post("held", [4]);
    await sleep(300);
    expect(client.events()).toEqual([1]);
    await post("held", [2]);
    await client.received(3);
    expect(client.events()).toEqual([1, 2, 3, 4]);
    expect(client.frames.map((f) => f.position)).toEqual([1, 2, 3, 4]);
    await client.close();
  });

  it("events already seen are not sent again", async () => {
    const client = await InboxClient.open("live", APP);
    await post("live", [4, 5]);
    await post("live", [5]);
    await post("live", [6]);
    await client.received(2);
    await sleep(200);
    expect(client.events()).toEqual([5, 6]);
    await client.close();
  });

  it("channels without event numbers: the position is the delivery sequence number", async () => {
    const client = await InboxClient.open("bundles", APP);
    await post("bundles", [1]);
    await post("bundles", [1]);
    const frames = await client.received(2);
    expect(frames.map((f) => f.position)).toEqual(frames.map((f) => f.delivery));
    expect(frames[0]!.events).toBeUndefined();
    await client.close();
  });
});

describe("since and ack: a reconnect with since = last acked loses nothing", () => {
  it("acks are recorded per connection (shown in /status); a reconnect with since gets what came after, then the live events", async () => {
    const first = await InboxClient.open("since", APP);
    await post("since", [1]);
    await post("since", [2]);
    await first.received(2);
    first.ack(1);
    expect(await eventually(() => subscribersOf("since"), (s) => s[0]?.acked === 1)).toEqual([expect.objectContaining({ client: "app", acked: 1, sent: 2 })]);
    await first.close();

    await post("since", [3]);
    const again = await InboxClient.open("since", APP, 1);
    await again.received(2);
    await post("since", [4]);
    await again.received(3);
    expect(again.events()).toEqual([2, 3, 4]);
    again.ack(4);
    expect(await eventually(() => subscribersOf("since"), (s) => s[0]?.acked === 4)).toEqual([expect.objectContaining({ acked: 4 })]);
    await again.close();
    expect(await eventually(() => subscribersOf("since"), (s) => s.length === 0)).toEqual([]);
  });

  it("since=0 replays everything retained; an ack beyond what was sent counts only up to what was sent", async () => {
    const client = await InboxClient.open("since", APP, 0);
    await client.received(4);
    expect(client.events()).toEqual([1, 2, 3, 4]);
    client.ack(99);
    expect(await eventually(() => subscribersOf("since"), (s) => s[0]?.acked === 4)).toEqual([expect.objectContaining({ acked: 4, sent: 4 })]);
    await client.close();
  });

  it("a message that is not an ack closes the connection with 1008", async () => {
    const client = await InboxClient.open("since", APP);
    client.ws.send("hello");
    await eventually(async () => client.closed, (c) => c !== undefined);
    expect(client.closed?.code).toBe(1008);
  });
});

describe("many connections per channel", () => {
  it("two clients (a subscriber and an admin) each get every event, and ack on their own", async () => {
    const app = await InboxClient.open("two", APP);
    const ops = await InboxClient.open("two", ADMIN);
    for (const n of [1, 2, 3]) await post("two", [n]);
    await Promise.all([app.received(3), ops.received(3)]);
    expect(app.events()).toEqual([1, 2, 3]);
    expect(ops.events()).toEqual([1, 2, 3]);
    app.ack(3);
    ops.ack(1);
    const subs = await eventually(() => subscribersOf("two"), (s) => s.some((x) => x.acked === 3) && s.some((x) => x.acked === 1));
    expect(subs.map((s) => [s.client, s.acked]).sort()).toEqual([["app", 3], ["ops", 1]]);
    await Promise.all([app.close(), ops.close()]);
  });
});

describe("who may connect: refused before the upgrade", () => {
  it("401 without credentials or with a wrong key, as an OperationOutcome", async () => {
    for (const headers of [{}, { "X-Api-Key": "wrong" }] as Array<Record<string, string>>) {
      const res = await refusedUpgrade("/channels/access/ws", headers);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body)).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "login" }] });
    }
  });

  it("403 for a client that is neither admin nor a subscriber of the channel", async () => {
    const res = await refusedUpgrade("/channels/access/ws", { "X-Api-Key": OTHER });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "forbidden", details: { coding: [{ code: "not-a-subscriber" }] } }] });
    await expect(InboxClient.open("access", OTHER)).rejects.toThrow("upgrade refused");
  });

  it("404 for an unknown channel; 400 for a bad since", async () => {
    expect((await refusedUpgrade("/channels/nope/ws", { "X-Api-Key": ADMIN })).status).toBe(404);
    expect((await refusedUpgrade("/channels/access/ws?since=-1", { "X-Api-Key": ADMIN })).status).toBe(400);
  });

  it("426 for a plain GET, not an upgrade", async () => {
    const res = await fetch(new URL("/channels/access/ws", base), { headers: { "X-Api-Key": APP } });
    expect(res.status).toBe(426);
    expect(await res.json()).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "not-supported" }] });
  });
});

describe("a browser may use the console's session cookie on the upgrade, from the edge's own origin only", () => {
  /** Signs in on the console's form as a browser would, and returns the session cookie (name=value). */
  async function signIn(key: string): Promise<string> {
    const res = await fetch(new URL("/admin/console/sign-in", base), {
      method: "POST",
      redirect: "manual",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: base.origin },
      body: new URLSearchParams({ credential: key }),
    });
    expect(res.status).toBe(303);
    return res.headers.get("Set-Cookie")!.split(";")[0]!;
  }

  it("the session cookie with the edge's Origin connects and gets events", async () => {
    const cookie = await signIn(ADMIN);
    const client = await InboxClient.open("browser", "", undefined, base, { Cookie: cookie, Origin: base.origin });
    await post("browser", [1]);
    expect((await client.received(1)).map((f) => f.position)).toEqual([1]);
    expect(await eventually(() => subscribersOf("browser"), (s) => s.length === 1)).toEqual([expect.objectContaining({ client: "ops" })]);
    await client.close();
  });

  it("the session cookie from another origin, or without Origin, is refused with 403 before the upgrade", async () => {
    const cookie = await signIn(ADMIN);
    for (const headers of [{ Cookie: cookie, Origin: "https://elsewhere.example" }, { Cookie: cookie }] as Array<Record<string, string>>) {
      const res = await refusedUpgrade("/channels/browser/ws", headers);
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "forbidden", details: { coding: [{ code: "cross-origin-websocket" }] } }] });
    }
  });

  it("a key in a header needs no Origin, and wins over a cookie; a tampered cookie is refused with 401", async () => {
    const cookie = await signIn(ADMIN);
    // The header's client (not a subscriber) is the one that counts, whatever the cookie says.
    expect((await refusedUpgrade("/channels/browser/ws", { Cookie: cookie, Origin: base.origin, "X-Api-Key": OTHER })).status).toBe(403);
    const client = await InboxClient.open("browser", APP, undefined, base, { "X-Api-Key": APP, Origin: "https://elsewhere.example" });
    await client.close();
    expect((await refusedUpgrade("/channels/browser/ws", { Cookie: `${cookie}x`, Origin: base.origin })).status).toBe(401);
  });
});

describe("hibernation: the object sleeps with the sockets open and wakes for the next event or ack", () => {
  it("after the object is evicted with its WebSockets hibernated, the same connection gets new events and its acks count", async () => {
    const client = await InboxClient.open("nap", APP);
    await post("nap", [1]);
    await client.received(1);
    client.ack(1);
    await eventually(() => subscribersOf("nap"), (s) => s[0]?.acked === 1);

    await harness.getWorker().evictDurableObject("CHANNELS", { name: "nap", webSockets: "hibernate" });

    // Woken by an event: the connection's state comes back from its attachment.
    await post("nap", [2]);
    await client.received(2);
    expect(client.events()).toEqual([1, 2]);
    expect(client.closed).toBeUndefined();
    await harness.getWorker().evictDurableObject("CHANNELS", { name: "nap", webSockets: "hibernate" });
    // Woken by the client's ack.
    client.ack(2);
    expect(await eventually(() => subscribersOf("nap"), (s) => s[0]?.acked === 2)).toEqual([expect.objectContaining({ client: "app", acked: 2, sent: 2 })]);
    await client.close();
  });
});

describe("JWT clients: the token's sub is the client name the channel lists", () => {
  const ISSUER = "https://idp.example.org";
  const AUDIENCE = "https://fhir-edge.example.org";
  let jwks: http.Server;
  let jwtEdge: ReturnType<typeof createTestHarness>;
  let jwtBase: URL;
  let key: CryptoKey;
  const token = (sub: string) =>
    new SignJWT({ scope: "system/Patient.rs" })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256", { extractable: true });
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    jwks = http.createServer((_, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
    jwtEdge = createTestHarness({
      workers: [
        {
          configPath: "./wrangler.toml",
          vars: {
            ALLOW_INSECURE_HTTP: "true",
            ACCESS_LOG: "off",
            PROXY_AUTH: "jwt",
            PROXY_JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
            PROXY_JWT_ISSUER: ISSUER,
            PROXY_JWT_AUDIENCE: AUDIENCE,
            FHIR_SOURCE_EHR: "fhir+http://127.0.0.1:9/fhir",
            FHIR_CHANNELS: JSON.stringify({ ward: channel({ subscribers: ["ward-app"] }) }),
          },
          secrets: { CHANNEL_SECRET: SECRET, CONSOLE_SESSION_SECRET: "inbox-console-session-secret-for-tests" },
        },
      ],
    });
    jwtBase = (await jwtEdge.listen()).url;
  });

  afterAll(async () => {
    await jwtEdge?.close();
    await new Promise((r) => jwks?.close(r));
  });

  it("a JWT whose sub is in subscribers connects and gets events; another sub is refused with 403", async () => {
    const client = await InboxClient.open("ward", "", undefined, jwtBase, { Authorization: `Bearer ${await token("ward-app")}` });
    const res = await fetch(new URL("/webhooks/ward", jwtBase), {
      method: "POST",
      headers: { "Content-Type": "application/fhir+json", "X-Api-Key": SECRET },
      body: JSON.stringify(notification("R5", "event-notification", { events: [1] })),
    });
    expect(res.status).toBe(200);
    await client.received(1);
    expect(client.events()).toEqual([1]);
    await client.close();
    expect((await refusedUpgrade("/channels/ward/ws", { Authorization: `Bearer ${await token("someone-else")}` }, jwtBase)).status).toBe(403);
  });
});
