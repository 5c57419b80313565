/**
 * The deployable Worker's size, as `wrangler deploy --dry-run --outdir`
 * writes it: raw and gzip (what Cloudflare limits and what cold start grows
 * with). Used by `npm run bench` for the report and by
 * test/integration/bundle-size.test.ts for the budget.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";

/** Budget for the gzip size of the Worker's modules. */
export const BUNDLE_BUDGET_GZIP_BYTES = 150 * 1024;

export interface BundleSize {
  /** The modules counted (source maps and the README wrangler adds are not uploaded as code). */
  files: string[];
  rawBytes: number;
  gzipBytes: number;
}

/** wrangler's CLI entry, found beside its resolved package (its exports hide bin/). */
export function wranglerBin(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");
}

/** Runs `wrangler deploy --dry-run --outdir <outDir>` with this Node; rejects with wrangler's output on failure. */
export function buildForDeploy(outDir: string, cwd = process.cwd()): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [wranglerBin(), "deploy", "--dry-run", "--outdir", outDir],
      { cwd, env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => (error ? reject(new Error(`wrangler deploy --dry-run failed:\n${stdout}${stderr}`)) : resolve()),
    );
  });
}

/** Sums the Worker modules in a dry-run output directory, each gzipped at zlib's default level (which gives wrangler's own "gzip:" figure). */
export function measureBundle(outDir: string): BundleSize {
  const files = readdirSync(outDir).filter((f) => /\.(m?js|wasm)$/.test(f) && statSync(join(outDir, f)).isFile());
  if (files.length === 0) throw new Error(`no Worker modules in ${outDir}`);
  let rawBytes = 0;
  let gzipBytes = 0;
  for (const f of files) {
    const bytes = readFileSync(join(outDir, f));
    rawBytes += bytes.length;
    gzipBytes += gzipSync(bytes).length;
  }
  return { files, rawBytes, gzipBytes };
}
