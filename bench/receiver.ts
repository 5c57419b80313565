/**
 * The relay channel's targets for the intake row: a tiny node:http server in
 * the bench process, one path per target (`/a`, `/b`), answering every
 * delivery 200 at once, counting deliveries and noting which event numbers
 * each target received (the R5 `eventNumber`s in the body). `watch(n)` makes
 * it note when each target first has event `n` (the last event sent), so the
 * bench can say how long after the load the last target had the last event,
 * and which acknowledged events a target never got.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Receiver {
  /** One URL per target, in the order of the names given. */
  urls: string[];
  names: string[];
  /** Deliveries received so far, per target name. */
  counts(): Record<string, number>;
  /** The distinct event numbers a target has received so far. */
  events(name: string): ReadonlySet<number>;
  /** From now on, notes when each target first receives event `n`. */
  watch(n: number): void;
  /** When (Date.now()) each target first received the watched event; undefined until it has. */
  markerAt(name: string): number | undefined;
  /** Deliveries each target had received when it got the watched event. */
  countAtMarker(name: string): number | undefined;
  close(): Promise<void>;
}

const EVENT_NUMBER = /"eventNumber":"(\d+)"/g;

export async function startReceiver(names: string[]): Promise<Receiver> {
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const events = new Map<string, Set<number>>(names.map((n) => [n, new Set()]));
  let watched: number | undefined;
  const marked = new Map<string, { at: number; count: number }>();
  const server = http.createServer((req, res) => {
    const name = (req.url ?? "/").slice(1).split("?")[0]!;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const seen = events.get(name);
      if (seen) {
        counts[name]! += 1;
        for (const m of Buffer.concat(chunks).toString("utf8").matchAll(EVENT_NUMBER)) {
          const n = Number(m[1]);
          seen.add(n);
          if (n === watched && !marked.has(name)) marked.set(name, { at: Date.now(), count: counts[name]! });
        }
      }
      res.writeHead(seen ? 200 : 404, { "Content-Length": "0" });
      res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    urls: names.map((n) => `http://127.0.0.1:${port}/${n}`),
    names,
    counts: () => ({ ...counts }),
    events: (name) => events.get(name) ?? new Set(),
    watch: (n) => {
      watched = n;
      marked.clear();
    },
    markerAt: (name) => marked.get(name)?.at,
    countAtMarker: (name) => marked.get(name)?.count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
