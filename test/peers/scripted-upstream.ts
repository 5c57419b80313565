/**
 * An upstream whose every answer the test scripts: one loopback node:http
 * server with any number of named bases (`/<name>/...`), each recording when
 * it was called and answering with what its script says for that call. For
 * the protection tests (a source that throttles, fails, recovers) and the
 * bench, where a real FHIR server cannot be told to fail on cue.
 * Runs under Node 22 type stripping: only erasable TypeScript.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/** The answer to call number `n` (1-based) of a base. */
export type Script = (n: number, path: string) => ScriptedAnswer;

export interface ScriptedUpstream {
  url: string;
  /** The base URL of a named base: `http://127.0.0.1:PORT/<name>`. */
  base(name: string): string;
  script(name: string, script: Script): void;
  /**
   * When each call to a base arrived (ms since the epoch), in order; the
   * edge's reachability probes (`GET <base>/metadata`, for `/status`) are
   * answered 200 and not counted.
   */
  calls(name: string): number[];
  close(): Promise<void>;
}

export const searchset = (resourceType: string, ids: string[]): ScriptedAnswer => ({
  status: 200,
  headers: { "Content-Type": "application/fhir+json" },
  body: { resourceType: "Bundle", type: "searchset", total: ids.length, entry: ids.map((id) => ({ resource: { resourceType, id }, search: { mode: "match" } })) },
});

export const healthy: Script = () => ({ status: 200, headers: { "Content-Type": "application/fhir+json" }, body: { resourceType: "Patient", id: "1" } });

export async function startScriptedUpstream(): Promise<ScriptedUpstream> {
  const scripts = new Map<string, Script>();
  const calls = new Map<string, number[]>();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const name = path.split("/")[1] ?? "";
    if (path === `/${name}/metadata`) {
      req.resume();
      res.writeHead(200, { "Content-Type": "application/fhir+json" });
      res.end(JSON.stringify({ resourceType: "CapabilityStatement", status: "active", kind: "instance", fhirVersion: "4.0.1", format: ["json"] }));
      return;
    }
    const seen = calls.get(name) ?? [];
    seen.push(Date.now());
    calls.set(name, seen);
    const answer = (scripts.get(name) ?? healthy)(seen.length, path.slice(name.length + 1));
    req.resume();
    res.writeHead(answer.status, { "Content-Type": "application/fhir+json", ...answer.headers });
    res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    base: (name) => `${url}/${name}`,
    script: (name, script) => scripts.set(name, script),
    calls: (name) => [...(calls.get(name) ?? [])],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
