import { calculateJwkThumbprint, exportJWK, importJWK, importPKCS8, SignJWT, type CryptoKey, type JWK } from "jose";
import type { JwtAlg } from "../../config/types.ts";

export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** One key a source signs with (the first) or publishes for rotation (all). */
export interface AssertionKey {
  privateKey: CryptoKey;
  publicJwk: JWK & { kid: string; alg: string; use: "sig" };
}

const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

function publicPart(jwk: JWK): JWK {
  const copy: Record<string, unknown> = { ...jwk };
  for (const m of PRIVATE_MEMBERS) delete copy[m];
  delete copy.key_ops;
  delete copy.ext;
  return copy as JWK;
}

async function importOne(material: JWK | string, alg: JwtAlg, kid: string | undefined): Promise<AssertionKey> {
  const privateKey = (typeof material === "string" ? await importPKCS8(material, alg, { extractable: true }) : await importJWK(material, alg, { extractable: true })) as CryptoKey;
  const pub = publicPart(typeof material === "string" ? await exportJWK(privateKey) : material);
  const given = kid ?? (typeof material !== "string" ? material.kid : undefined);
  const keyId = given ?? (await calculateJwkThumbprint(pub, "sha256"));
  return { privateKey, publicJwk: { ...pub, kid: keyId, alg, use: "sig" } };
}

/**
 * Imports a source's `private_key`: a PKCS#8 PEM, a private JWK, or a JWK Set
 * whose first key signs and whose other keys are still published (rotation).
 * The default `kid` is the RFC 7638 SHA-256 thumbprint, base64url.
 * @see https://www.rfc-editor.org/rfc/rfc7638
 */
export async function importAssertionKeys(text: string, alg: JwtAlg, kid: string | undefined): Promise<AssertionKey[]> {
  const trimmed = text.trim();
  if (trimmed.startsWith("-----BEGIN")) return [await importOne(trimmed, alg, kid)];
  const parsed = JSON.parse(trimmed) as JWK | { keys: JWK[] };
  if ("keys" in parsed && Array.isArray(parsed.keys)) {
    return Promise.all(parsed.keys.map((k, i) => importOne(k, (k.alg as JwtAlg | undefined) ?? alg, i === 0 ? (kid ?? k.kid) : k.kid)));
  }
  return [await importOne(parsed as JWK, alg, kid)];
}

/**
 * Signs a SMART Backend Services client assertion: `iss` = `sub` = client_id,
 * `aud` = the token URL, `exp` 4 minutes ahead (the spec allows at most 5),
 * and a fresh `jti` every time, retries included.
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#request-access-token
 */
export async function signAssertion(key: AssertionKey, clientId: string, tokenUrl: string, now: number): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: key.publicJwk.alg, kid: key.publicJwk.kid, typ: "JWT" })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(tokenUrl)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 240)
    .setJti(crypto.randomUUID())
    .sign(key.privateKey);
}
