/**
 * The deployable Worker stays within its size budget: cold start on the edge
 * grows with the script, so a dependency that balloons it fails here rather
 * than in production. Builds exactly as `wrangler deploy` would (dry run).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BUNDLE_BUDGET_GZIP_BYTES, buildForDeploy, measureBundle } from "../../bench/bundle-size.ts";

const outDir = mkdtempSync(join(tmpdir(), "fhir-edge-bundle-"));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("bundle size (wrangler deploy --dry-run)", () => {
  it(`is at most ${BUNDLE_BUDGET_GZIP_BYTES / 1024} KiB gzip`, async () => {
    await buildForDeploy(outDir);
    const size = measureBundle(outDir);
    expect(size.files).toContain("index.js");
    expect(size.rawBytes).toBeGreaterThan(size.gzipBytes);
    expect(size.gzipBytes, `gzip ${(size.gzipBytes / 1024).toFixed(1)} KiB, raw ${(size.rawBytes / 1024).toFixed(1)} KiB`).toBeLessThanOrEqual(
      BUNDLE_BUDGET_GZIP_BYTES,
    );
  });
});
