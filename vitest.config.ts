import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { relayBindings } from "./test/fixtures/relay-channels.ts";

export default defineConfig({
  test: {
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    projects: [
      {
        // Inside workerd. The relay tests' loopback peers are started by globalSetup and
        // reached through these bindings.
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { bindings: relayBindings(inject("receiverPort"), inject("sourcePort")) },
          })),
        ],
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          globalSetup: ["test/unit/setup/peers.ts"],
          // Property tests run inside workerd, which does not see this process's environment: read here, injected there.
          provide: { fuzz: { runs: process.env.FUZZ_RUNS ?? "", seed: process.env.FUZZ_SEED ?? "", path: process.env.FUZZ_PATH ?? "" } },
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
