import { exports } from "cloudflare:workers";
import { env } from "cloudflare:test";
import { it, expect } from "vitest";
it("works", async () => {
  const r = await exports.default.fetch(new Request("http://x/demo/a/%2e%2e/b/../c?x=%2F&y=a b"));
  const j = await r.json();
  console.log(j, Object.keys(env));
  expect(r.status).toBe(200);
});
