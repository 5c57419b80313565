import { defineConfig } from "vitest/config";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { relayBindings } from "./test/fixtures/relay-channels.ts";

const fuzz = { runs: process.env.FUZZ_RUNS ?? "", seed: process.env.FUZZ_SEED ?? "", path: process.env.FUZZ_PATH ?? "" };

export default defineConfig({
  test: {
    // The JSON report is what .ci/run counts; the default reporter is for people.
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    projects: [
      {
        // Inside workerd, pure and I/O-free or with I/O injected: no peers, no sleeping. The relay's
        // channel bindings are declared (their targets are never called here), with placeholder ports.
        plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: relayBindings(0, 0) } })],
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          // Property tests run inside workerd, which does not see this process's environment: read here, injected there.
          provide: { fuzz },
        },
      },
      {
        // Inside workerd too, against loopback peers (webhook targets, a $events/$status source) that
        // globalSetup starts and stops, reached through these bindings; these tests poll and wait.
        plugins: [
          cloudflareTest(({ inject }) => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: { bindings: relayBindings(inject("receiverPort"), inject("sourcePort")) },
          })),
        ],
        test: {
          name: "workerd-integration",
          include: ["test/integration/workerd/**/*.test.ts"],
          globalSetup: ["test/integration/workerd/setup/peers.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: ["test/integration/workerd/**"],
          environment: "node",
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        // The test peers' own checks: that the FHIR and OAuth servers the integration tests stand on
        // behave as the real products do. Not tests of the edge.
        test: { name: "peers", include: ["test/peers/**/*.test.ts"], environment: "node", testTimeout: 30_000, hookTimeout: 60_000 },
      },
    ],
  },
});
