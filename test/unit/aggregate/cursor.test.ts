import { describe, expect, it } from "vitest";
import { cursorKey, readCursor, signCursor, type CursorState } from "../../../src/aggregate/cursor.ts";

const STATE: CursorState = {
  resourceType: "Patient",
  client: "app",
  count: 10,
  sort: "-birthdate",
  positions: [
    { source: "a", at: "/Patient?_count=10&_offset=10", skip: 3, total: 25 },
    { source: "b", at: null, skip: 0, total: 7 },
  ],
};
const NOW = Date.parse("2026-01-01T00:00:00Z");

describe("aggregate cursor: HMAC-SHA256 signed, with expiry", () => {
  it("round-trips the state", async () => {
    const key = await cursorKey("a-long-random-secret-for-tests-0123456789");
    const token = await signCursor(STATE, key, NOW);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(await readCursor(token, key, NOW + 1000)).toEqual({ ok: true, value: STATE });
  });

  it("refuses any altered byte, another key, and garbage", async () => {
    const key = await cursorKey("a-long-random-secret-for-tests-0123456789");
    const token = await signCursor(STATE, key, NOW);
    const [body, sig] = token.split(".") as [string, string];
    const payload = JSON.parse(atob(body.replaceAll("-", "+").replaceAll("_", "/") + "==".slice(0, (4 - (body.length % 4)) % 4)));
    payload.p[0].a = "//evil.example/Patient";
    const forgedBody = btoa(JSON.stringify(payload)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    for (const bad of [`${forgedBody}.${sig}`, `${body}.${sig.slice(0, -2)}AA`, `${body}x.${sig}`, "garbage", "", "a.b", `.${sig}`]) {
      expect(await readCursor(bad, key, NOW), bad).toEqual({ ok: false, error: "invalid" });
    }
    expect(await readCursor(token, await cursorKey("another-secret-entirely-0123456789"), NOW)).toEqual({ ok: false, error: "invalid" });
  });

  it("refuses a signature whose last character differs only in its two unused bits (...M to ...N)", async () => {
    const key = await cursorKey("a-long-random-secret-for-tests-0123456789");
    const token = await signCursor(STATE, key, NOW);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(token.at(-1)!);
    // A lenient base64url decoder gives the same 32 bytes for all four of these.
    for (const flip of [1, 2, 3]) {
      expect(await readCursor(token.slice(0, -1) + alphabet[last ^ flip], key, NOW)).toEqual({ ok: false, error: "invalid" });
    }
    expect((await readCursor(token, key, NOW)).ok).toBe(true);
  });

  it("expires after an hour", async () => {
    const key = await cursorKey("a-long-random-secret-for-tests-0123456789");
    const token = await signCursor(STATE, key, NOW);
    expect((await readCursor(token, key, NOW + 3599_000)).ok).toBe(true);
    expect(await readCursor(token, key, NOW + 3600_000)).toEqual({ ok: false, error: "expired" });
  });

  it("without a secret, signs with one random key per isolate", async () => {
    const key = await cursorKey(undefined);
    expect(await cursorKey(undefined)).toBe(key);
    const token = await signCursor(STATE, key, NOW);
    expect((await readCursor(token, key, NOW)).ok).toBe(true);
    expect((await readCursor(token, await cursorKey("some-secret-0123456789-0123456789"), NOW)).ok).toBe(false);
  });
});
