import { describe, expect, it } from "vitest";
import { readCursor, signCursor } from "../../src/aggregate/cursor.ts";
import { issueSession, readSession, SESSION_COOKIE } from "../../src/auth/inbound/session-cookie.ts";
import { readBulkUrl, signBulkUrl } from "../../src/bulk/edge-url.ts";
import { hmacKey } from "../../src/crypto.ts";
import { hmacKeyOrIsolateKey, signToken, verifyToken } from "../../src/signed-token.ts";

const NOW = Date.UTC(2026, 0, 1);
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The token with its signature's last character changed only in the bits no byte uses (a 32-byte signature leaves 2). */
function withUnusedBitsSet(token: string): string {
  const last = token.at(-1) ?? "";
  const altered = ALPHABET[ALPHABET.indexOf(last) ^ 1];
  return token.slice(0, -1) + altered;
}

describe("signed tokens: HMAC-SHA256 over a purpose label and the payload", () => {
  it("verifies what it signed and gives back the payload", async () => {
    const key = await hmacKey("a-secret");
    const token = await signToken(key, "label.", "cGF5bG9hZA");
    expect(await verifyToken(key, "label.", token)).toBe("cGF5bG9hZA");
  });

  it("refuses a token signed for another purpose, another key, or altered", async () => {
    const key = await hmacKey("a-secret");
    const token = await signToken(key, "one.", "cGF5bG9hZA");
    expect(await verifyToken(key, "two.", token)).toBeUndefined();
    expect(await verifyToken(await hmacKey("another"), "one.", token)).toBeUndefined();
    expect(await verifyToken(key, "one.", `x${token}`)).toBeUndefined();
    expect(await verifyToken(key, "one.", withUnusedBitsSet(token))).toBeUndefined();
    for (const bad of ["", ".", "abc", "abc.", `.${token}`]) expect(await verifyToken(key, "one.", bad)).toBeUndefined();
  });

  it("without a secret (undefined or empty), one random key per isolate", async () => {
    const a = await hmacKeyOrIsolateKey(undefined);
    expect(await hmacKeyOrIsolateKey("")).toBe(a);
    expect(await hmacKeyOrIsolateKey("configured")).not.toBe(a);
  });
});

describe("a signature changed in its last character's unused bits is refused", () => {
  it("aggregate cursor", async () => {
    const key = await hmacKey("a-secret");
    const token = await signCursor({ resourceType: "Patient", client: "c", count: null, sort: null, positions: [{ source: "a", at: null, skip: 0 }] }, key, NOW);
    expect((await readCursor(token, key, NOW)).ok).toBe(true);
    expect(await readCursor(withUnusedBitsSet(token), key, NOW)).toEqual({ ok: false, error: "invalid" });
  });

  it("Bulk Data edge URL", async () => {
    const key = await hmacKey("a-secret");
    const token = await signBulkUrl({ kind: "status", source: "s", client: "c", url: "https://fhir.example/status/1", credentials: true }, key, NOW);
    expect((await readBulkUrl(token, key, NOW)).ok).toBe(true);
    expect(await readBulkUrl(withUnusedBitsSet(token), key, NOW)).toEqual({ ok: false, error: "invalid" });
  });

  it("console session cookie", async () => {
    const env = { CONSOLE_SESSION_SECRET: "a-long-random-secret-for-tests-0123456789" };
    const { setCookie } = await issueSession(env, "client-a", NOW);
    const value = setCookie.slice(SESSION_COOKIE.length + 1, setCookie.indexOf(";"));
    expect(await readSession(env, `${SESSION_COOKIE}=${value}`, NOW)).toMatchObject({ ok: true, client: "client-a" });
    expect((await readSession(env, `${SESSION_COOKIE}=${withUnusedBitsSet(value)}`, NOW)).ok).toBe(false);
  });
});
