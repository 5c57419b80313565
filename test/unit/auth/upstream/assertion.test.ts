import { calculateJwkThumbprint, decodeProtectedHeader, exportJWK, exportPKCS8, generateKeyPair, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { importAssertionKeys, signAssertion } from "../../../../src/auth/upstream/assertion.ts";

const TOKEN_URL = "https://ehr.example/oauth2/token";

describe("SMART Backend Services client assertion", () => {
  it("imports a PKCS#8 PEM; kid defaults to the RFC 7638 thumbprint; the public JWK has no private part", async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS384", { extractable: true });
    const [key] = await importAssertionKeys(await exportPKCS8(privateKey), "RS384", undefined);
    const expectedKid = await calculateJwkThumbprint(await exportJWK(publicKey), "sha256");
    expect(key!.publicJwk).toMatchObject({ kid: expectedKid, alg: "RS384", use: "sig", kty: "RSA" });
    expect("d" in key!.publicJwk).toBe(false);
  });

  it("signs iss = sub = client_id, aud = token URL, exp at most 5 minutes ahead, typ JWT, a fresh jti each time", async () => {
    const { publicKey, privateKey } = await generateKeyPair("ES384", { extractable: true });
    const [key] = await importAssertionKeys(JSON.stringify(await exportJWK(privateKey)), "ES384", "my-kid");
    const now = Date.now();
    const a = await signAssertion(key!, "client-1", TOKEN_URL, now);
    const b = await signAssertion(key!, "client-1", TOKEN_URL, now);
    expect(decodeProtectedHeader(a)).toEqual({ alg: "ES384", kid: "my-kid", typ: "JWT" });
    const { payload } = await jwtVerify(a, publicKey, { issuer: "client-1", subject: "client-1", audience: TOKEN_URL });
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
    expect(payload.jti).toBeTruthy();
    const other = await jwtVerify(b, publicKey);
    expect(other.payload.jti).not.toBe(payload.jti);
  });

  it("a JWK Set rotates: the first key signs, every key is published", async () => {
    const current = await generateKeyPair("RS384", { extractable: true });
    const previous = await generateKeyPair("RS384", { extractable: true });
    const jwks = { keys: [{ ...(await exportJWK(current.privateKey)), kid: "2026-11" }, { ...(await exportJWK(previous.privateKey)), kid: "2026-05" }] };
    const keys = await importAssertionKeys(JSON.stringify(jwks), "RS384", undefined);
    expect(keys.map((k) => k.publicJwk.kid)).toEqual(["2026-11", "2026-05"]);
    const signed = await signAssertion(keys[0]!, "c", TOKEN_URL, Date.now());
    await expect(jwtVerify(signed, current.publicKey)).resolves.toBeTruthy();
  });
});
