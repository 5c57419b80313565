/**
 * The relay channel's targets for the intake row: a tiny node:http server in
 * the bench process, one path per target (`/a`, `/b`), answering every
 * delivery 200 at once and counting them. It notes when each target first
 * receives a body containing `marker` (the last event sent), so the bench can
 * say how long after the load the last target had the last event.
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
  /** When (Date.now()) each target first received the marker; undefined until it has. */
  markerAt(name: string): number | undefined;
  /** Deliveries each target had received when it got the marker. */
  countAtMarker(name: string): number | undefined;
  close(): Promise<void>;
}

export async function startReceiver(names: string[], marker: string): Promise<Receiver> {
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  const marked = new Map<string, { at: number; count: number }>();
  const server = http.createServer((req, res) => {
    const name = (req.url ?? "/").slice(1).split("?")[0]!;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (name in counts) {
        counts[name]! += 1;
        if (!marked.has(name) && Buffer.concat(chunks).toString("utf8").includes(marker)) marked.set(name, { at: Date.now(), count: counts[name]! });
      }
      res.writeHead(name in counts ? 200 : 404, { "Content-Length": "0" });
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
    markerAt: (name) => marked.get(name)?.at,
    countAtMarker: (name) => marked.get(name)?.count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
