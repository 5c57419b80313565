/**
 * The bench's fixed upstream: node:http on 127.0.0.1 serving constant bytes
 * built once at start, so every target behind it is measured against the
 * same cheap server.
 *
 *   GET /fhir/R4/Patient/<id>            the 2 KB Patient (a read: the edge streams it)
 *   GET /fhir/R4/Patient?...             the 200 KB searchset (a search: the edge rewrites it)
 *   GET /fhir/R4/Bundle/bench-searchset  the same 200 KB bytes as a read (the edge streams it)
 *   the same under /oauth/fhir/R4/...    only with `Authorization: Bearer bench-token-...`, else 401
 *   the same under /slow/fhir/R4/...     50 ms late (a timer: the server keeps answering others meanwhile)
 *   a search's `_count=N` (1..100) is honoured: the first N entries, same links
 *
 * Run as its own process (`node bench/upstream.ts`) so it can be pinned to a
 * core and its CPU counted apart from the harness; it prints one JSON line,
 * `{"port":N}`, when it listens, and stops on SIGTERM or when stdin closes.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PATIENT_ID, SEARCHSET_ENTRIES, SLOW_DELAY_MS, SLOW_PREFIX, UPSTREAM_BASE_PATH, patientJson, searchsetJson } from "./fixtures.ts";

export const OAUTH_PREFIX = "/oauth";
const CONTENT_TYPE = "application/fhir+json;charset=utf-8";

interface Payload {
  body: Buffer;
  headers: Record<string, string>;
}

function payload(text: string, etag: string): Payload {
  const body = Buffer.from(text, "utf8");
  return {
    body,
    headers: {
      "Content-Type": CONTENT_TYPE,
      "Content-Length": String(body.length),
      ETag: `W/"${etag}"`,
      "Last-Modified": "Wed, 01 Oct 2026 12:00:00 GMT",
    },
  };
}

/** Starts the upstream on 127.0.0.1 (`port` 0: any free port). */
export async function startUpstream(port = 0): Promise<{ port: number; server: http.Server }> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const bound = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${bound}`;
  // Each base gets its own searchset: its links carry that base, as a real server's would.
  const bases = new Map<string, { patient: Payload; searchset: Payload; counted: Map<number, Payload> }>();
  for (const prefix of ["", OAUTH_PREFIX, SLOW_PREFIX]) {
    const base = `${prefix}${UPSTREAM_BASE_PATH}`;
    bases.set(base, { patient: payload(patientJson(), "3"), searchset: payload(searchsetJson(origin + base), "7"), counted: new Map() });
  }
  /** The searchset for a search's `_count` (built once per count, then constant bytes). */
  const searchset = (base: string, query: string): Payload => {
    const served = bases.get(base)!;
    const n = Number(/(?:^|&)_count=(\d+)/.exec(query)?.[1] ?? SEARCHSET_ENTRIES);
    if (!(n >= 1 && n < SEARCHSET_ENTRIES)) return served.searchset;
    let p = served.counted.get(n);
    if (!p) served.counted.set(n, (p = payload(searchsetJson(origin + base, n), `7-${n}`)));
    return p;
  };
  const notFound = payload(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code: "not-found" }] }), "0");
  const unauthorized = payload(JSON.stringify({ resourceType: "OperationOutcome", issue: [{ severity: "error", code: "login" }] }), "0");

  server.keepAliveTimeout = 120_000;
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? "" : url.slice(q + 1);
    const oauth = path.startsWith(OAUTH_PREFIX + "/");
    const slow = path.startsWith(SLOW_PREFIX + "/");
    const base = (oauth ? OAUTH_PREFIX : slow ? SLOW_PREFIX : "") + UPSTREAM_BASE_PATH;
    const served = bases.get(base)!;
    let answer: Payload = notFound;
    let status = 404;
    if (oauth && !(req.headers.authorization ?? "").startsWith("Bearer bench-token-")) {
      answer = unauthorized;
      status = 401;
    } else if (path === `${base}/Patient/${PATIENT_ID}`) {
      answer = served.patient;
      status = 200;
    } else if (path === `${base}/Patient`) {
      answer = searchset(base, query);
      status = 200;
    } else if (path === `${base}/Bundle/bench-searchset`) {
      answer = served.searchset;
      status = 200;
    }
    const send = () => {
      res.writeHead(status, answer.headers);
      res.end(answer.body);
    };
    if (slow) setTimeout(send, SLOW_DELAY_MS);
    else send();
  });
  return { port: bound, server };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { port, server } = await startUpstream(Number(process.env.PORT ?? 0));
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // The harness holds our stdin: when it goes away (even killed), so do we.
  process.stdin.on("close", stop);
  process.stdin.resume();
  process.stdout.write(JSON.stringify({ port }) + "\n");
}
