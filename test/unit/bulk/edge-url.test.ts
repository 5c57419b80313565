import { describe, expect, it } from "vitest";
import { bulkUrlKey, readBulkUrl, signBulkUrl, type BulkUrlClaims } from "../../../src/bulk/edge-url.ts";
import { hmacKey } from "../../../src/crypto.ts";

const claims: BulkUrlClaims = { kind: "file", source: "ehr", client: "alice", url: "https://ehr.example/bulkfiles/1/Patient.ndjson", credentials: true };
const NOW = 1_800_000_000_000;

describe("edge URLs for Bulk Data locations: signed, bound, expiring", () => {
  it("reads back what was signed: kind, source, client, upstream URL, credentials", async () => {
    const key = await hmacKey("a-secret");
    const read = await readBulkUrl(await signBulkUrl(claims, key, NOW), key, NOW + 1000);
    expect(read).toEqual({ ok: true, value: claims });
  });

  it("refuses a token changed in any single character (payload or signature), including the signature's unused low bits", async () => {
    const key = await hmacKey("a-secret");
    const token = await signBulkUrl(claims, key, NOW);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < token.length; i++) {
      if (token[i] === ".") continue;
      // The next letter of the alphabet: for the last character this changes only bits base64url may leave unused.
      const next = alphabet[(alphabet.indexOf(token[i]!) + 1) % alphabet.length]!;
      const changed = token.slice(0, i) + next + token.slice(i + 1);
      expect((await readBulkUrl(changed, key, NOW)).ok, `position ${i}`).toBe(false);
    }
  });

  it("refuses a token signed under another key, and garbage", async () => {
    const token = await signBulkUrl(claims, await hmacKey("one"), NOW);
    expect(await readBulkUrl(token, await hmacKey("two"), NOW)).toEqual({ ok: false, error: "invalid" });
    for (const bad of ["", ".", "abc", "abc.def", `${token}.x`, "x".repeat(9000)]) expect((await readBulkUrl(bad, await hmacKey("one"), NOW)).ok).toBe(false);
  });

  it("expires after its lifetime (24 h by default)", async () => {
    const key = await hmacKey("a-secret");
    const token = await signBulkUrl(claims, key, NOW);
    expect((await readBulkUrl(token, key, NOW + 24 * 3600_000 - 1000)).ok).toBe(true);
    expect(await readBulkUrl(token, key, NOW + 24 * 3600_000)).toEqual({ ok: false, error: "expired" });
  });

  it("without BULK_URL_SECRET, one random key per isolate: stable within it", async () => {
    const a = await bulkUrlKey(undefined);
    const b = await bulkUrlKey("");
    expect(a).toBe(b);
    const token = await signBulkUrl(claims, a, NOW);
    expect((await readBulkUrl(token, b, NOW)).ok).toBe(true);
    expect((await readBulkUrl(token, await bulkUrlKey("configured"), NOW)).ok).toBe(false);
  });
});
