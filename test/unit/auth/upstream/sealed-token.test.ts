import { describe, expect, it } from "vitest";
import { openGrant, sealGrant } from "../../../../src/auth/upstream/sealed-token.ts";

const grant = { accessToken: "eyJ.secret.token", expiresAt: 2_000_000_000_000, refreshAt: 1_999_999_970_000 };

describe("tokens in KV are sealed with AES-GCM under TOKEN_CACHE_KEY", () => {
  it("round-trips, and the stored value does not contain the token", async () => {
    const sealed = await sealGrant(grant, "k1", "token:v1:epic:abc");
    expect(sealed).not.toContain("secret");
    expect(await openGrant(sealed, "k1", "token:v1:epic:abc")).toEqual(grant);
  });
  it("does not open under another secret or another KV key", async () => {
    const sealed = await sealGrant(grant, "k1", "token:v1:epic:abc");
    expect(await openGrant(sealed, "k2", "token:v1:epic:abc")).toBeUndefined();
    expect(await openGrant(sealed, "k1", "token:v1:cerner:abc")).toBeUndefined();
    expect(await openGrant("garbage", "k1", "token:v1:epic:abc")).toBeUndefined();
  });
});
