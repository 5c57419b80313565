/**
 * A FHIR server's topic-based subscription operations, for gap recovery and liveness tests:
 * `GET <base>/Subscription/<id>/$events?eventsSinceNumber=&eventsUntilNumber=` and
 * `GET <base>/Subscription/<id>/$status`, answered from an event log per subscription in the
 * subscription's wire form (R5, R4B, R4 backport), with notification Bundles built after the
 * specification's examples (test/fixtures/notifications.ts). No npm package implements these
 * operations, so this small server is the peer. Loopback only. Controlled from Node, or over
 * HTTP from workerd tests:
 *   PUT /control/subscriptions/<id>  {"format": "R5", "count": 5, "eventsSupported": true, "missing": [3]}
 *   GET /control/requests             -> every request path received
 * Behind OAuth when started with `authorize` (e.g. a token check at the oidc-provider peer):
 * an operation whose Authorization header it refuses is answered 401 with a Bearer challenge.
 * Runs under Node 22 type stripping: only erasable TypeScript.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { notification, type Format } from "../fixtures/notifications.ts";

export interface SubscriptionLog {
  format: Format;
  /** Events that happened so far: 1..count. */
  count: number;
  /** false: `$events` answers 404, as a server without it would. */
  eventsSupported: boolean;
  /** Events `$events` leaves out of its answer (a partial answer), as a server that no longer has them would. */
  missing?: number[];
}

export interface SubscriptionSourceOptions {
  /** Checks each operation's Authorization header; false is answered 401 invalid_token. */
  authorize?: (authorization: string | undefined) => boolean | Promise<boolean>;
}

export interface SubscriptionSource {
  port: number;
  base: string;
  requests: string[];
  /** Each operation's path and the status it was answered with, in order. */
  answers: Array<{ path: string; status: number }>;
  setSubscription(id: string, log: Partial<SubscriptionLog>): void;
  close(): Promise<void>;
}

export async function startSubscriptionSource(basePath = "/fhir", options: SubscriptionSourceOptions = {}): Promise<SubscriptionSource> {
  const logs = new Map<string, SubscriptionLog>();
  const requests: string[] = [];
  const answers: Array<{ path: string; status: number }> = [];
  let base = "";
  const set = (id: string, log: Partial<SubscriptionLog>) =>
    logs.set(id, { format: "R5", count: 0, eventsSupported: true, ...logs.get(id), ...log });

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        if (!url.pathname.startsWith("/control/")) answers.push({ path: req.url ?? "", status });
        res.writeHead(status, { "content-type": "application/fhir+json", ...headers }).end(JSON.stringify(body));
      };
      if (url.pathname.startsWith("/control/")) {
        const [, , kind, id = ""] = url.pathname.split("/");
        if (kind === "subscriptions" && req.method === "PUT") {
          set(id, JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Partial<SubscriptionLog>);
          res.writeHead(204).end();
        } else if (kind === "requests") send(200, requests);
        else res.writeHead(404).end();
        return;
      }
      requests.push(req.url ?? "");
      if (options.authorize && !(await options.authorize(req.headers.authorization))) {
        send(401, { resourceType: "OperationOutcome", issue: [{ severity: "error", code: "login", diagnostics: "Invalid or revoked token" }] }, { "www-authenticate": 'Bearer error="invalid_token"' });
        return;
      }
      const match = new RegExp(`^${basePath}/Subscription/([^/]+)/\\$(events|status)$`).exec(url.pathname);
      const log = match ? logs.get(match[1]!) : undefined;
      if (!match || !log) {
        send(404, { resourceType: "OperationOutcome", issue: [{ severity: "error", code: "not-found", diagnostics: "Unknown subscription" }] });
        return;
      }
      const subscription = `${base}/Subscription/${match[1]}`;
      if (match[2] === "status") {
        const status = notification(log.format, "query-status", { subscription, eventsSinceSubscriptionStart: log.count, base });
        const resource = (status.entry as Array<{ resource: unknown }>)[0]!.resource;
        send(200, { resourceType: "Bundle", type: "searchset", total: 1, entry: [{ resource, search: { mode: "match" } }] });
        return;
      }
      if (!log.eventsSupported) {
        send(404, { resourceType: "OperationOutcome", issue: [{ severity: "error", code: "not-supported", diagnostics: "$events is not supported" }] });
        return;
      }
      const since = Number(url.searchParams.get("eventsSinceNumber") ?? 1);
      const until = Math.min(Number(url.searchParams.get("eventsUntilNumber") ?? log.count), log.count);
      const events: number[] = [];
      for (let n = Math.max(1, since); n <= until; n++) if (!log.missing?.includes(n)) events.push(n);
      send(200, notification(log.format, "query-event", { subscription, events, eventsSinceSubscriptionStart: log.count, base }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}${basePath}`;
  return {
    port,
    base,
    requests,
    answers,
    setSubscription: set,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
