/**
 * A tiny OAuth 2.0 token endpoint on loopback (client_credentials,
 * client_secret_basic) that counts its calls, so the bench can show the edge
 * fetches one token per token lifetime however hard it is driven.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export const BENCH_CLIENT_ID = "bench-client";
export const BENCH_CLIENT_SECRET = "bench-secret-not-a-real-one";

export interface TokenEndpoint {
  url: string;
  /** Epoch ms of each call that was answered with a token. */
  calls: number[];
  /** Calls refused (wrong client or grant): should stay 0. */
  refused: number;
  close(): Promise<void>;
}

export async function startTokenEndpoint(lifetimeSeconds: number): Promise<TokenEndpoint> {
  const calls: number[] = [];
  const state = { refused: 0 };
  const expected = `Basic ${Buffer.from(`${encodeURIComponent(BENCH_CLIENT_ID)}:${encodeURIComponent(BENCH_CLIENT_SECRET)}`).toString("base64")}`;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += String(c)));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      if (req.method !== "POST" || req.headers.authorization !== expected || form.get("grant_type") !== "client_credentials") {
        state.refused++;
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: "invalid_client" }));
        return;
      }
      calls.push(Date.now());
      res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
      res.end(JSON.stringify({ access_token: `bench-token-${calls.length}`, token_type: "Bearer", expires_in: lifetimeSeconds, scope: form.get("scope") ?? "" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    calls,
    get refused() {
      return state.refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
