/**
 * Webhook targets for the subscription relay's tests: one loopback node:http server with any
 * number of named targets (`POST /hooks/<name>`), each recording every delivery attempt and
 * answering as the test says (fail the next n, be down for good, or fail a share of attempts
 * drawn from a seeded random, so a run replays). Controlled from Node directly, or over HTTP
 * from tests running inside workerd:
 *   PUT /control/<name>   {"fail": n, "status": 503, "down": false, "failRatio": 0.3, "seed": 7, "verify": ["whsec_..."]}
 *   GET /deliveries/<name>  -> [{ ok, status, headers, body, verified }]
 * A target given `verify` secrets checks every delivery's Standard Webhooks signature with the
 * `standardwebhooks` package, as a receiver written from docs/relay.md would, and answers 401
 * to one that fails (recorded with `verified: false`).
 * Runs under Node 22 type stripping: only erasable TypeScript.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { seededRandom } from "../fixtures/seeded-random.ts";

export interface Delivery {
  ok: boolean;
  status: number;
  headers: Record<string, string>;
  body: string;
  at: number;
  /** With `verify` secrets: whether the Standard Webhooks signature verified with one of them. */
  verified?: boolean;
}

interface Behaviour {
  fail: number;
  status: number;
  down: boolean;
  /** Share of attempts (0..1) answered with `status`, drawn from a PRNG seeded with `seed`. */
  failRatio: number;
  seed: number;
  /** Standard Webhooks secrets to verify every delivery with (any one verifying is enough), as a receiver holds them. */
  verify?: string[];
}

/** Verifies with the standardwebhooks package: a whsec_ secret as the library reads it, any other as its UTF-8 bytes. */
function verifiesWithAny(secrets: string[], body: string, headers: Record<string, string>): boolean {
  return secrets.some((secret) => {
    try {
      const wh = secret.startsWith("whsec_") ? new Webhook(secret) : new Webhook(new TextEncoder().encode(secret), { format: "raw" });
      wh.verify(body, headers);
      return true;
    } catch {
      return false;
    }
  });
}


export interface WebhookReceiver {
  port: number;
  url(name: string): string;
  deliveries(name: string): Delivery[];
  control(name: string, behaviour: Partial<Behaviour>): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries = new Map<string, Delivery[]>();
  const behaviours = new Map<string, Behaviour>();
  const randoms = new Map<string, () => number>();
  const behaviour = (name: string) => behaviours.get(name) ?? { fail: 0, status: 503, down: false, failRatio: 0, seed: 1 };
  const control = (name: string, b: Partial<Behaviour>) => {
    behaviours.set(name, { ...behaviour(name), ...b });
    if (b.seed !== undefined || b.failRatio !== undefined) randoms.set(name, seededRandom(behaviour(name).seed));
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const [, kind, name = ""] = url.pathname.split("/");
      if (kind === "control" && req.method === "PUT") {
        control(name, JSON.parse(body || "{}") as Partial<Behaviour>);
        res.writeHead(204).end();
        return;
      }
      if (kind === "deliveries" && req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(deliveries.get(name) ?? []));
        return;
      }
      if (kind === "hooks" && req.method === "POST") {
        const b = behaviour(name);
        const unlucky = b.failRatio > 0 && (randoms.get(name) ?? Math.random)() < b.failRatio;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
        const verified = b.verify ? verifiesWithAny(b.verify, body, headers) : undefined;
        const failing = b.down || b.fail > 0 || unlucky || verified === false;
        if (b.fail > 0) control(name, { fail: b.fail - 1 });
        const status = verified === false ? 401 : failing ? b.status : 200;
        deliveries.set(name, [...(deliveries.get(name) ?? []), { ok: !failing, status, headers, body, at: Date.now(), ...(verified === undefined ? {} : { verified }) }]);
        res.writeHead(status).end();
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (name) => `http://127.0.0.1:${port}/hooks/${name}`,
    deliveries: (name) => deliveries.get(name) ?? [],
    control,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
