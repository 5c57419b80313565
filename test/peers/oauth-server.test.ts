import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignJWT, exportJWK, generateKeyPair, importJWK } from "jose";
import type { CryptoKey, JWK } from "jose";
import { randomUUID } from "node:crypto";
import { ASSERTION_TYPE, startOAuthServer } from "./oauth-server.ts";
import type { OAuthServer } from "./oauth-server.ts";

const servers: OAuthServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

const FORM = { "content-type": "application/x-www-form-urlencoded" };

interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function tokenRequest(url: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<TokenResponse> {
  const res = await fetch(url, { method: "POST", headers: { ...FORM, ...headers }, body: new URLSearchParams(form) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

function basic(id: string, secret: string): string {
  // RFC 6749 §2.3.1: form-urlencode id and secret before base64.
  const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, "+");
  return "Basic " + Buffer.from(`${enc(id)}:${enc(secret)}`).toString("base64");
}

interface AssertionOpts {
  alg: "RS384" | "ES384";
  kid: string;
  key: CryptoKey;
  clientId: string;
  aud: string;
  expIn?: number;
  typ?: string | null;
  jti?: string;
}

function assertion(o: AssertionOpts): Promise<string> {
  const header: { alg: string; kid: string; typ?: string } = { alg: o.alg, kid: o.kid };
  if (o.typ !== null) header.typ = o.typ ?? "JWT";
  return new SignJWT({})
    .setProtectedHeader(header)
    .setIssuer(o.clientId)
    .setSubject(o.clientId)
    .setAudience(o.aud)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (o.expIn ?? 240))
    .setJti(o.jti ?? randomUUID())
    .sign(o.key);
}

describe("test/peers/oauth-server (oidc-provider, client_credentials)", () => {
  let srv: OAuthServer;
  let rsKey: CryptoKey;
  let ecKey: CryptoKey;
  let strangerKey: CryptoKey;
  const rsKid = "rs384-key";
  const ecKid = "es384-key";

  beforeAll(async () => {
    const rs = await generateKeyPair("RS384", { extractable: true });
    const ec = await generateKeyPair("ES384", { extractable: true });
    strangerKey = (await generateKeyPair("RS384")).privateKey;
    rsKey = rs.privateKey;
    ecKey = ec.privateKey;
    const pub = async (k: CryptoKey, kid: string, alg: string): Promise<JWK> => ({ ...(await exportJWK(k)), kid, alg, use: "sig" });
    srv = await startOAuthServer({
      clients: [
        { clientId: "basic-client", secret: "b4sic s3cr:t/+%&=", authMethod: "client_secret_basic" },
        { clientId: "post-client", secret: "post-secret", authMethod: "client_secret_post" },
        {
          clientId: "backend-client",
          authMethod: "private_key_jwt",
          jwks: { keys: [await pub(rs.publicKey, rsKid, "RS384"), await pub(ec.publicKey, ecKid, "ES384")] },
        },
        { clientId: "patient-only", secret: "p", authMethod: "client_secret_post", scope: "system/Patient.rs" },
      ],
    });
    servers.push(srv);
  });

  it("listens on loopback over plain http and publishes the token endpoint", async () => {
    expect(srv.issuer).toBe(`http://127.0.0.1:${srv.port}`);
    expect(srv.tokenUrl).toBe(`${srv.issuer}/token`);
    const meta = (await (await fetch(`${srv.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(meta.token_endpoint).toBe(srv.tokenUrl);
    expect(meta.grant_types_supported).toContain("client_credentials");
    expect(meta.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(["client_secret_basic", "client_secret_post", "private_key_jwt"]),
    );
    expect(meta.token_endpoint_auth_signing_alg_values_supported).toEqual(["RS384", "ES384"]);
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(["system/*.read", "system/*.write", "system/Patient.rs"]));
  });

  it("client_secret_basic: issues a bearer token with expires_in = accessTokenTtl and the SMART scopes", async () => {
    const r = await tokenRequest(
      srv.tokenUrl,
      { grant_type: "client_credentials", scope: "system/*.read system/*.write" },
      { authorization: basic("basic-client", "b4sic s3cr:t/+%&=") },
    );
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.body).toMatchObject({ token_type: "Bearer", expires_in: 300, scope: "system/*.read system/*.write" });
    expect(typeof r.body.access_token).toBe("string");
    expect(await srv.verifyAccessToken(r.body.access_token as string)).toBe(true);
    expect(await srv.inspectAccessToken(r.body.access_token as string)).toMatchObject({
      clientId: "basic-client",
      scope: "system/*.read system/*.write",
    });
  });

  it("client_secret_post: issues a token", async () => {
    const r = await tokenRequest(srv.tokenUrl, {
      grant_type: "client_credentials",
      client_id: "post-client",
      client_secret: "post-secret",
      scope: "system/Patient.rs",
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: "Bearer", expires_in: 300, scope: "system/Patient.rs" });
    expect(await srv.verifyAccessToken(r.body.access_token as string)).toBe(true);
  });

  for (const alg of ["RS384", "ES384"] as const) {
    it(`private_key_jwt with a ${alg} client_assertion (aud = token URL): issues a token`, async () => {
      const key = alg === "RS384" ? rsKey : ecKey;
      const kid = alg === "RS384" ? rsKid : ecKid;
      const jwt = await assertion({ alg, kid, key, clientId: "backend-client", aud: srv.tokenUrl });
      const r = await tokenRequest(srv.tokenUrl, {
        grant_type: "client_credentials",
        scope: "system/*.read",
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: jwt,
      });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body).toMatchObject({ token_type: "Bearer", expires_in: 300, scope: "system/*.read" });
      expect(await srv.verifyAccessToken(r.body.access_token as string)).toBe(true);
      expect(srv.lastAssertion?.header).toEqual({ alg, kid, typ: "JWT" });
      expect(srv.lastAssertion?.claims).toMatchObject({ iss: "backend-client", sub: "backend-client", aud: srv.tokenUrl });
    });
  }

  it("private_key_jwt: rejects a replayed jti, a foreign key, a wrong aud, a long-lived or typ-less assertion", async () => {
    const form = (client_assertion: string) => ({
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion,
    });
    const base = { alg: "RS384" as const, kid: rsKid, key: rsKey, clientId: "backend-client", aud: srv.tokenUrl };

    const once = await assertion(base);
    expect((await tokenRequest(srv.tokenUrl, form(once))).status).toBe(200);
    const replay = await tokenRequest(srv.tokenUrl, form(once));
    expect(replay).toMatchObject({ status: 401, body: { error: "invalid_client" } });

    expect(srv.lastTokenError?.detail).toMatch(/only be used once/);

    const cases: [string, RegExp][] = [
      [await assertion({ ...base, key: strangerKey }), /signature verification failed|no matching key/],
      [await assertion({ ...base, aud: "http://127.0.0.1:1/token" }), /audience \(aud\)/],
      [await assertion({ ...base, expIn: 600 }), /five minutes/],
      [await assertion({ ...base, typ: null }), /typ must be "JWT"/],
    ];
    for (const [bad, reason] of cases) {
      const r = await tokenRequest(srv.tokenUrl, form(bad));
      expect(r, JSON.stringify(r.body)).toMatchObject({ status: 401, body: { error: "invalid_client" } });
      expect(srv.lastTokenError).toMatchObject({ clientId: "backend-client", status: 401, error: "invalid_client" });
      expect(srv.lastTokenError?.detail).toMatch(reason);
    }
    // the last assertion received is recorded even when it was rejected
    expect(srv.lastAssertion?.header).toEqual({ alg: "RS384", kid: rsKid });
  });

  it("private_key_jwt: an RS256 assertion is rejected (SMART algs only)", async () => {
    // same registered RSA key, re-imported for RS256 (WebCrypto keys are bound to one hash)
    const { alg: _alg, ...rsJwk } = await exportJWK(rsKey);
    const rs256Key = await importJWK(rsJwk, "RS256");
    const rs256 = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: rsKid, typ: "JWT" })
      .setIssuer("backend-client")
      .setSubject("backend-client")
      .setAudience(srv.tokenUrl)
      .setExpirationTime("4m")
      .setJti(randomUUID())
      .sign(rs256Key);
    const r = await tokenRequest(srv.tokenUrl, {
      grant_type: "client_credentials",
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: rs256,
    });
    expect(r).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(srv.lastTokenError?.detail).toBe("alg mismatch");
  });

  it("a wrong secret gives 401 invalid_client (basic and post)", async () => {
    const b = await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials" }, { authorization: basic("basic-client", "nope") });
    expect(b).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(b.headers.get("www-authenticate")).toMatch(/^Basic /);
    const p = await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_id: "post-client", client_secret: "nope" });
    expect(p).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(srv.lastTokenError?.detail).toBe("invalid secret provided");
    const u = await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_id: "nobody", client_secret: "x" });
    expect(u).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(srv.lastTokenError).toMatchObject({ clientId: "nobody", detail: "client not found" });
  });

  it("insists on the registered auth method (basic client via post, post client via basic)", async () => {
    const before = srv.tokensIssued();
    const a = await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_id: "basic-client", client_secret: "b4sic s3cr:t/+%&=" });
    expect(a).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    const b = await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials" }, { authorization: basic("post-client", "post-secret") });
    expect(b).toMatchObject({ status: 401, body: { error: "invalid_client" } });
    expect(srv.tokensIssued()).toBe(before);
  });

  it("enforces a client's scope allow-list and drops unknown scopes", async () => {
    const creds = { grant_type: "client_credentials", client_id: "patient-only", client_secret: "p" };
    const denied = await tokenRequest(srv.tokenUrl, { ...creds, scope: "system/*.read" });
    expect(denied).toMatchObject({ status: 400, body: { error: "invalid_scope" } });
    const ok = await tokenRequest(srv.tokenUrl, { ...creds, scope: "system/Patient.rs system/Unknown.zz" });
    expect(ok).toMatchObject({ status: 200, body: { scope: "system/Patient.rs" } });
  });

  it("verifyAccessToken: false for garbage, false after invalidate / revokeAll", async () => {
    expect(await srv.verifyAccessToken("garbage")).toBe(false);
    expect(await srv.verifyAccessToken("")).toBe(false);
    const get = async () =>
      (
        await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_id: "post-client", client_secret: "post-secret" })
      ).body.access_token as string;
    const t1 = await get();
    const t2 = await get();
    const t3 = await get();
    expect(await srv.verifyAccessToken(t1)).toBe(true);
    await srv.invalidate(t1);
    expect(await srv.verifyAccessToken(t1)).toBe(false);
    expect(await srv.verifyAccessToken(t2)).toBe(true);
    await srv.revokeAll();
    expect(await srv.verifyAccessToken(t2)).toBe(false);
    expect(await srv.verifyAccessToken(t3)).toBe(false);
    // new tokens still work after revokeAll
    expect(await srv.verifyAccessToken(await get())).toBe(true);
  });

  it("counts token requests per client and in total", async () => {
    srv.resetCounters();
    expect(srv.tokenRequests()).toBe(0);
    await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials" }, { authorization: basic("basic-client", "b4sic s3cr:t/+%&=") });
    await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials" }, { authorization: basic("basic-client", "wrong") });
    await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_id: "post-client", client_secret: "post-secret" });
    const jwt = await assertion({ alg: "ES384", kid: ecKid, key: ecKey, clientId: "backend-client", aud: srv.tokenUrl });
    await tokenRequest(srv.tokenUrl, { grant_type: "client_credentials", client_assertion_type: ASSERTION_TYPE, client_assertion: jwt });
    expect(srv.tokenRequests()).toBe(4);
    expect(srv.tokenRequests("basic-client")).toBe(2);
    expect(srv.tokenRequests("post-client")).toBe(1);
    expect(srv.tokenRequests("backend-client")).toBe(1);
    expect(srv.tokenRequests("nobody")).toBe(0);
    expect(srv.tokensIssued()).toBe(3);
    expect(srv.tokensIssued("basic-client")).toBe(1);
  });
});

describe("short-lived tokens", () => {
  it("expires_in follows accessTokenTtl and the token stops verifying once expired", async () => {
    const s = await startOAuthServer({ clients: [{ clientId: "c", secret: "s", authMethod: "client_secret_post" }], accessTokenTtl: 2 });
    servers.push(s);
    const r = await tokenRequest(s.tokenUrl, { grant_type: "client_credentials", client_id: "c", client_secret: "s", scope: "system/*.read" });
    expect(r.status).toBe(200);
    expect(r.body.expires_in).toBe(2);
    const token = r.body.access_token as string;
    expect(await s.verifyAccessToken(token)).toBe(true);
    await new Promise((res) => setTimeout(res, 3_100));
    expect(await s.verifyAccessToken(token)).toBe(false);

    s.setAccessTokenTtl(7);
    const r2 = await tokenRequest(s.tokenUrl, { grant_type: "client_credentials", client_id: "c", client_secret: "s" });
    expect(r2.body.expires_in).toBe(7);
  });

  it("port option and independent stores per server", async () => {
    const a = await startOAuthServer({ clients: [{ clientId: "c", secret: "s", authMethod: "client_secret_post" }] });
    servers.push(a);
    const b = await startOAuthServer({ clients: [{ clientId: "c", secret: "s", authMethod: "client_secret_post" }], port: a.port + 1 }).catch(
      // the neighbouring port may be taken; fall back to ephemeral
      () => startOAuthServer({ clients: [{ clientId: "c", secret: "s", authMethod: "client_secret_post" }] }),
    );
    servers.push(b);
    expect(b.port).not.toBe(a.port);
    const t = (await tokenRequest(a.tokenUrl, { grant_type: "client_credentials", client_id: "c", client_secret: "s" })).body.access_token as string;
    expect(await a.verifyAccessToken(t)).toBe(true);
    expect(await b.verifyAccessToken(t)).toBe(false);
  });

  it("rejects bad client metadata at start (not on the first token request)", async () => {
    await expect(
      startOAuthServer({ clients: [{ clientId: "x", secret: "sécret", authMethod: "client_secret_post" }] }),
    ).rejects.toThrow(/client x: /);
    await expect(startOAuthServer({ clients: [{ clientId: "x", authMethod: "private_key_jwt" }] })).rejects.toThrow(/needs jwks/);
  });
});
