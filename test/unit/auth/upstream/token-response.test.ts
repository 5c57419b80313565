import { describe, expect, it } from "vitest";
import { isFresh, processTokenResponse, refreshMargin } from "../../../../src/auth/upstream/token-response.ts";

const NOW = 1_800_000_000_000;

describe("token lifetime: refreshed min(60 s, 10% of expires_in) before expiry", () => {
  it.each([
    [300, 30_000],
    [3600, 60_000],
    [5, 500],
    [600, 60_000],
  ])("expires_in %i s: margin %i ms", (expiresIn, margin) => {
    expect(refreshMargin(expiresIn)).toBe(margin);
  });

  it("a 300 s SMART token is used for 270 s, then replaced before it expires", () => {
    const r = processTokenResponse(200, { access_token: "t", token_type: "Bearer", expires_in: 300 }, NOW);
    expect(r).toEqual({ ok: true, value: { accessToken: "t", expiresAt: NOW + 300_000, refreshAt: NOW + 270_000 } });
    if (!r.ok) return;
    expect(isFresh(r.value, NOW + 269_999)).toBe(true);
    expect(isFresh(r.value, NOW + 270_000)).toBe(false);
  });

  it("never assumes a lifetime the token endpoint did not give: used until refused", () => {
    const r = processTokenResponse(200, { access_token: "t", token_type: "bearer" }, NOW);
    expect(r).toEqual({ ok: true, value: { accessToken: "t", expiresAt: null, refreshAt: null } });
    if (r.ok) expect(isFresh(r.value, NOW + 10 * 365 * 86_400_000)).toBe(true);
  });

  it("accepts expires_in sent as a string", () => {
    const r = processTokenResponse(200, { access_token: "t", expires_in: "120" }, NOW);
    expect(r.ok && r.value.refreshAt).toBe(NOW + 120_000 - 12_000);
  });
});

describe("token endpoint failures", () => {
  it("a refusal keeps the OAuth error code only", () => {
    expect(processTokenResponse(401, { error: "invalid_client", error_description: "secret xyz wrong" }, NOW)).toEqual({
      ok: false,
      error: { reason: "refused", status: 401, error: "invalid_client" },
    });
    expect(processTokenResponse(503, "<html>", NOW)).toEqual({ ok: false, error: { reason: "refused", status: 503, error: "http_503" } });
  });
  it("no access_token, or not a bearer token, is malformed", () => {
    expect(processTokenResponse(200, { token_type: "Bearer" }, NOW)).toMatchObject({ ok: false, error: { reason: "malformed" } });
    expect(processTokenResponse(200, { access_token: "t", token_type: "DPoP" }, NOW)).toMatchObject({ ok: false, error: { reason: "malformed" } });
  });
});
