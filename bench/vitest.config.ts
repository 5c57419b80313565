/**
 * `vitest bench` for bench/micro: the hot pure functions inside workerd
 * (the same plugin and wrangler.toml as the unit tests). Run by
 * `npm run bench`; not part of `npm test`.
 */
import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";

export default defineConfig({
  plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" } })],
  test: {
    name: "micro",
    include: [],
    benchmark: { include: ["bench/micro/**/*.bench.ts"] },
  },
});
