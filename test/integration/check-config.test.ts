/** `npm run check-config` (docs/contract.md#configuration-errors): offline validation, non-zero exit on any error, no secret printed. */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function run(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["scripts/check-config.mjs", ...args], (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

describe("npm run check-config", () => {
  it("exits non-zero and names each source and field at fault, never a value", async () => {
    const { code, out } = await run("--config", "test/fixtures/check-config/bad.toml", "--vars", "/nonexistent");
    expect(code).toBe(1);
    expect(out).toContain("ok   ok");
    expect(out).toContain("FAIL bad");
    expect(out).toContain("bad (max_attempts)");
    expect(out).toContain("bad (auth)");
    expect(out).not.toContain("hunter2secret");
  });

  it("reads .dev.vars on top of wrangler.toml, and passes when all is well", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fhir-edge-"));
    const devVars = join(dir, ".dev.vars");
    writeFileSync(devVars, 'PROXY_API_KEYS="app:k-1"\nEPIC_KEY={"kty":"EC","crv":"P-384","d":"x","x":"y","y":"z"}\n');
    const { code, out } = await run("--config", "test/fixtures/check-config/good.toml", "--vars", devVars);
    expect(out).toContain("ok   epic");
    expect(out).toContain("ok   hapi");
    expect(code).toBe(0);
  });

  it("a secret that only exists in Cloudflare fails the check, unless --assume-secrets", async () => {
    const strict = await run("--config", "test/fixtures/check-config/good.toml", "--vars", "/nonexistent");
    expect(strict.code).toBe(1);
    expect(strict.out).toContain("EPIC_KEY");
    const assumed = await run("--config", "test/fixtures/check-config/good.toml", "--vars", "/nonexistent", "--assume-secrets");
    expect(assumed.code).toBe(0);
  });

  it("knows the [[ratelimits]] bindings wrangler.toml declares, and fails on a PROXY_RATE_LIMITS entry naming another", async () => {
    const { code, out } = await run("--config", "test/fixtures/check-config/rate-limits.toml", "--vars", "/nonexistent");
    expect(code).toBe(1);
    expect(out).toContain("[unknown-binding] PROXY_RATE_LIMITS");
    expect(out).toContain("RATE_LIMIT_MISSING");
    expect(out).not.toContain("names RATE_LIMIT_APP");
  });
});
