import { createTestHarness } from "wrangler";
import { it, expect } from "vitest";
import http from "node:http";
it("harness", async () => {
  const srv = http.createServer((req, res) => { res.end(JSON.stringify({ url: req.url })); });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as any).port;
  const edge = createTestHarness({ workers: [{ configPath: "./wrangler.toml", vars: { X: "y" } }] });
  const { url } = await edge.listen();
  const res = await fetch(new URL("/demo/a/%2e%2e/b/..%2fc//d?x=%2F&y=a%20b", url));
  console.log(await res.text(), url.href);
  await edge.close(); srv.close();
});
