/**
 * A real OAuth 2.0 authorization server for tests, built on `oidc-provider`.
 *
 * Supports the client_credentials grant for three kinds of confidential clients:
 *   - client_secret_basic  (secret in the Authorization: Basic header)
 *   - client_secret_post   (secret in the form body)
 *   - private_key_jwt      (SMART Backend Services: a signed client_assertion,
 *                           RS384 / ES384, public keys registered inline as `jwks`)
 *
 * Served by node:http on 127.0.0.1 (plain http, loopback only). Access tokens are
 * opaque and stored in a per-server in-memory adapter, so a resource server in the
 * same process can check them with `verifyAccessToken` and tests can revoke them.
 *
 * Test-peer strictness on top of oidc-provider's own checks:
 *   - a client is only accepted with its registered auth method (oidc-provider on its
 *     own treats client_secret_basic and client_secret_post as interchangeable);
 *   - a client_assertion must follow SMART Backend Services: header `kid` and
 *     `typ: "JWT"`, claims iss = sub = client_id, `jti`, and `exp` no more than five
 *     minutes in the future; `aud` must be the token URL or the issuer;
 *   - only the algorithms in `assertionAlgs` are accepted (default RS384, ES384).
 *
 * Runs under Node 22 type stripping: only erasable TypeScript syntax.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes, randomUUID } from "node:crypto";
import Provider, { errors as oidcErrors } from "oidc-provider";
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from "jose";
import type { JWK } from "jose";

export type OAuthClientAuthMethod = "client_secret_basic" | "client_secret_post" | "private_key_jwt";

export interface OAuthClientSpec {
  clientId: string;
  /** Required for client_secret_basic / client_secret_post. */
  secret?: string;
  authMethod: OAuthClientAuthMethod;
  /** Public keys for private_key_jwt (an inline JWKS; private members are rejected). */
  jwks?: { keys: JWK[] };
  /**
   * Space-separated allow-list of scopes for this client. Requesting a known scope
   * outside it yields 400 invalid_scope. Without it the client may request any
   * scope the server knows.
   */
  scope?: string;
}

export interface DecodedAssertion {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

export interface TokenEndpointError {
  clientId: string;
  status: number;
  /** OAuth error code as sent, e.g. "invalid_client". */
  error: string;
  /** error_description as sent (often generic, e.g. "client authentication failed"). */
  description: string | undefined;
  /** oidc-provider's internal reason, not sent to the client (e.g. "audience (aud) must equal ..."). */
  detail: string | undefined;
}

export interface AccessTokenInfo {
  clientId: string;
  scope: string | undefined;
  /** Issued-at and expiry, epoch seconds. */
  iat: number;
  exp: number;
}

export interface OAuthServer {
  /** e.g. http://127.0.0.1:41234 (no trailing slash) */
  issuer: string;
  /** issuer + "/token"; the value SMART clients must use as client_assertion `aud`. */
  tokenUrl: string;
  port: number;
  /** Requests that reached the token endpoint (successful or not), total or for one client id. */
  tokenRequests(clientId?: string): number;
  /** Access tokens actually issued, total or for one client id. */
  tokensIssued(clientId?: string): number;
  /** The last client_assertion received at the token endpoint (valid or not), decoded without verification. */
  readonly lastAssertion: DecodedAssertion | undefined;
  /** The last failed token request, with oidc-provider's internal reason; for debugging tests. */
  readonly lastTokenError: TokenEndpointError | undefined;
  /** True only for an unexpired, unrevoked access token issued by this server. */
  verifyAccessToken(token: string): Promise<boolean>;
  /** Details of a valid access token, or undefined (same rules as verifyAccessToken). */
  inspectAccessToken(token: string): Promise<AccessTokenInfo | undefined>;
  /** Revoke one access token. */
  invalidate(token: string): Promise<void>;
  /** Revoke every access token issued so far; the next use of any of them fails. */
  revokeAll(): Promise<void>;
  /** Change the lifetime (seconds) of tokens issued from now on. */
  setAccessTokenTtl(seconds: number): void;
  /** Reset the request/issue counters and lastAssertion. */
  resetCounters(): void;
  close(): Promise<void>;
}

export interface StartOAuthServerOptions {
  clients: OAuthClientSpec[];
  /** Access token lifetime in seconds (expires_in). Default 300. */
  accessTokenTtl?: number;
  /** Port on 127.0.0.1; default 0 (ephemeral). */
  port?: number;
  /**
   * Extra scopes the server should know besides DEFAULT_SCOPES and every client's
   * `scope`. Requested scopes the server does not know are silently dropped from the
   * grant (oidc-provider behaviour), not rejected.
   */
  scopes?: string[];
  /** JWS algorithms accepted for client_assertion. Default ["RS384", "ES384"] (SMART). */
  assertionAlgs?: string[];
}

/** SMART v1 and v2 system scopes known to every server. */
export const DEFAULT_SCOPES: readonly string[] = [
  "system/*.read", "system/*.write", "system/*.*",
  "system/*.rs", "system/*.cruds", "system/*.c", "system/*.r", "system/*.u", "system/*.d", "system/*.s",
  "system/Patient.read", "system/Patient.write", "system/Patient.*", "system/Patient.rs", "system/Patient.cruds",
  "system/Observation.read", "system/Observation.write", "system/Observation.*", "system/Observation.rs",
  "system/Observation.cruds",
];

const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** SMART: "exp ... SHALL be no more than five minutes in the future". */
const MAX_ASSERTION_LIFETIME = 300;
/** Clock skew allowed on top of MAX_ASSERTION_LIFETIME and for exp/iat checks (seconds). */
const CLOCK_TOLERANCE = 5;

const epoch = (): number => Math.floor(Date.now() / 1000);

interface StoredEntry {
  payload: Record<string, unknown>;
  expiresAt: number | undefined; // epoch ms
}

/** Per-server in-memory oidc-provider adapter (the bundled one is process-global and warns). */
function createAdapterFactory(store: Map<string, StoredEntry>) {
  return (model: string) => {
    const key = (id: string): string => `${model}:${id}`;
    const get = (k: string): Record<string, unknown> | undefined => {
      const entry = store.get(k);
      if (!entry) return undefined;
      if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
        store.delete(k);
        return undefined;
      }
      return entry.payload;
    };
    return {
      async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
        const expiresAt = typeof expiresIn === "number" ? Date.now() + (expiresIn + CLOCK_TOLERANCE) * 1000 : undefined;
        store.set(key(id), { payload, expiresAt });
        if (typeof payload.uid === "string") store.set(`sessionUid:${payload.uid}`, { payload: { id }, expiresAt });
        if (typeof payload.userCode === "string") store.set(`userCode:${payload.userCode}`, { payload: { id }, expiresAt });
      },
      async find(id: string) {
        return get(key(id));
      },
      async findByUid(uid: string) {
        const ref = get(`sessionUid:${uid}`);
        return typeof ref?.id === "string" ? get(key(ref.id)) : undefined;
      },
      async findByUserCode(userCode: string) {
        const ref = get(`userCode:${userCode}`);
        return typeof ref?.id === "string" ? get(key(ref.id)) : undefined;
      },
      async consume(id: string): Promise<void> {
        const payload = get(key(id));
        if (payload) payload.consumed = epoch();
      },
      async destroy(id: string): Promise<void> {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId: string): Promise<void> {
        for (const [k, entry] of store) {
          if (entry.payload.grantId === grantId) store.delete(k);
        }
      },
    };
  };
}

function decodeAssertion(jwt: unknown): DecodedAssertion | undefined {
  if (typeof jwt !== "string") return undefined;
  try {
    return {
      header: decodeProtectedHeader(jwt) as Record<string, unknown>,
      claims: decodeJwt(jwt) as Record<string, unknown>,
    };
  } catch {
    return undefined;
  }
}

function basicClientId(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const [scheme, value] = authorization.split(" ");
  if (scheme?.toLowerCase() !== "basic" || !value) return undefined;
  const decoded = Buffer.from(value, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, "%20"));
  } catch {
    return undefined;
  }
}

function validateSpecs(clients: OAuthClientSpec[]): void {
  const seen = new Set<string>();
  for (const c of clients) {
    if (!c.clientId) throw new TypeError("OAuthClientSpec.clientId is required");
    if (seen.has(c.clientId)) throw new TypeError(`duplicate clientId ${c.clientId}`);
    seen.add(c.clientId);
    if (c.authMethod === "private_key_jwt") {
      if (!c.jwks?.keys?.length) throw new TypeError(`client ${c.clientId}: private_key_jwt needs jwks`);
    } else if (c.authMethod === "client_secret_basic" || c.authMethod === "client_secret_post") {
      if (!c.secret) throw new TypeError(`client ${c.clientId}: ${c.authMethod} needs a secret`);
    } else {
      throw new TypeError(`client ${c.clientId}: unsupported authMethod ${String(c.authMethod)}`);
    }
  }
}

export async function startOAuthServer(opts: StartOAuthServerOptions): Promise<OAuthServer> {
  validateSpecs(opts.clients);
  let accessTokenTtl = opts.accessTokenTtl ?? 300;
  const checkTtl = (s: number): void => {
    if (!Number.isSafeInteger(s) || s <= 0) throw new TypeError("accessTokenTtl must be a positive integer (seconds)");
  };
  checkTtl(accessTokenTtl);
  const assertionAlgs = opts.assertionAlgs ?? ["RS384", "ES384"];
  const specs = new Map(opts.clients.map((c) => [c.clientId, c]));

  const scopes = new Set<string>(["openid", ...DEFAULT_SCOPES, ...(opts.scopes ?? [])]);
  for (const c of opts.clients) for (const s of c.scope?.split(" ") ?? []) if (s) scopes.add(s);

  // Listen first: the issuer (and so the expected client_assertion audience) includes the port.
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const tokenUrl = `${issuer}/token`;

  // Own signing key so oidc-provider does not fall back to (and warn about) its dev keys.
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingJwk = { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: "RS256", use: "sig" };

  const store = new Map<string, StoredEntry>();

  try {
    return await buildServer();
  } catch (err) {
    server.closeAllConnections();
    server.close();
    throw err;
  }

  async function buildServer(): Promise<OAuthServer> {
    const provider = new Provider(issuer, {
      adapter: createAdapterFactory(store),
      jwks: { keys: [signingJwk] },
      cookies: { keys: [randomBytes(32).toString("base64url")] },
      clients: opts.clients.map((c) => ({
        client_id: c.clientId,
        ...(c.secret !== undefined && c.authMethod !== "private_key_jwt" ? { client_secret: c.secret } : {}),
        token_endpoint_auth_method: c.authMethod,
        ...(c.authMethod === "private_key_jwt" ? { jwks: c.jwks } : {}),
        ...(c.scope ? { scope: c.scope } : {}),
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
      })),
      clientAuthMethods: ["client_secret_basic", "client_secret_post", "private_key_jwt"],
      enabledJWA: { clientAuthSigningAlgValues: assertionAlgs },
      clockTolerance: CLOCK_TOLERANCE,
      scopes: [...scopes],
      features: {
        clientCredentials: { enabled: true },
        devInteractions: { enabled: false },
        // Resource indicators would route scopes through getResourceServerInfo (which by
        // default throws and warns); plain static scopes are enough here.
        resourceIndicators: { enabled: false },
        rpInitiatedLogout: { enabled: false },
        userinfo: { enabled: false },
        dPoP: { enabled: false },
        pushedAuthorizationRequests: { enabled: false },
      },
      ttl: {
        ClientCredentials: () => accessTokenTtl,
        // Not used by this server; numbers keep oidc-provider's "you SHOULD change it" notices quiet.
        AccessToken: 300,
        AuthorizationCode: 60,
        IdToken: 300,
        RefreshToken: 3600,
        Interaction: 600,
        Session: 3600,
        Grant: 3600,
        DeviceCode: 600,
        BackchannelAuthenticationRequest: 600,
      },
      // Runs after oidc-provider verified alg, signature, iss === client_id, exp, jti and
      // aud (issuer, token endpoint URL or the current endpoint URL).
      async assertJwtClientAuthClaimsAndHeader(_ctx: unknown, claims: Record<string, unknown>, header: Record<string, unknown>, client: { clientId: string }) {
        const fail = (msg: string): never => {
          throw new oidcErrors.InvalidClientAuth(msg);
        };
        if (typeof header.kid !== "string" || !header.kid) fail("SMART: client_assertion header must carry kid");
        if (header.typ !== "JWT") fail('SMART: client_assertion header typ must be "JWT"');
        if (claims.sub !== client.clientId) fail("SMART: client_assertion sub must be the client_id");
        if (typeof claims.exp !== "number" || claims.exp > epoch() + MAX_ASSERTION_LIFETIME + CLOCK_TOLERANCE) {
          fail("SMART: client_assertion exp must be no more than five minutes in the future");
        }
      },
    } as ConstructorParameters<typeof Provider>[1]);

    // Static clients are validated lazily (a bad secret/jwks/scope would otherwise surface
    // as 400 invalid_client_metadata on the first token request): fail fast instead.
    for (const c of opts.clients) {
      try {
        if (!(await provider.Client.find(c.clientId))) throw new Error("not found");
      } catch (cause) {
        const e = cause as { error_description?: string; message?: string };
        throw new TypeError(`client ${c.clientId}: ${e.error_description ?? e.message}`, { cause });
      }
    }

    // ---- bookkeeping around the token endpoint --------------------------------------
    const requests = new Map<string, number>();
    const issued = new Map<string, number>();
    let requestsTotal = 0;
    let issuedTotal = 0;
    let lastAssertion: DecodedAssertion | undefined;
    let lastTokenError: TokenEndpointError | undefined;
    type ProviderError = { error?: string; error_description?: string; error_detail?: string; message?: string };
    // Errors are handled (and turned into responses) inside oidc-provider's route stack;
    // the events are the only place the internal reason is visible. Stash it per request.
    const onError = (ctx: { state: Record<string, unknown> }, err: ProviderError) => {
      ctx.state.oauthPeerError = err;
    };
    provider.on("grant.error", onError);
    provider.on("server_error", onError);
    const bump = (m: Map<string, number>, id: string): void => {
      m.set(id, (m.get(id) ?? 0) + 1);
    };

    provider.use(async (ctx: any, next: () => Promise<void>) => {
      const isToken = ctx.method === "POST" && ctx.path === "/token";
      await next();
      if (!isToken) return;

      const params = ctx.oidc?.params ?? {};
      const assertion = decodeAssertion(params.client_assertion);
      if (assertion) lastAssertion = assertion;
      const clientId: string =
        ctx.oidc?.client?.clientId ??
        (typeof params.client_id === "string" ? params.client_id : undefined) ??
        basicClientId(ctx.headers.authorization) ??
        (typeof assertion?.claims.sub === "string" ? assertion.claims.sub : undefined) ??
        "(unknown)";
      requestsTotal += 1;
      bump(requests, clientId);

      if (ctx.status !== 200) {
        const pendingError = ctx.state.oauthPeerError as ProviderError | undefined;
        const body = (ctx.body ?? {}) as { error?: string; error_description?: string };
        lastTokenError = {
          clientId,
          status: ctx.status,
          error: body.error ?? pendingError?.error ?? "unknown",
          description: body.error_description,
          detail: pendingError?.error_detail ?? (pendingError?.error ? undefined : pendingError?.message),
        };
        return;
      }

      // oidc-provider accepts client_secret_basic and client_secret_post interchangeably;
      // a test peer should insist on the registered method.
      const spec = specs.get(clientId);
      const usedBasic = ctx.headers.authorization !== undefined;
      const usedPost = params.client_secret !== undefined;
      const mismatch =
        (spec?.authMethod === "client_secret_basic" && !usedBasic) ||
        (spec?.authMethod === "client_secret_post" && !usedPost);
      if (mismatch) {
        const token = ctx.oidc?.entities?.ClientCredentials;
        if (token) await token.destroy();
        ctx.status = 401;
        ctx.set("Cache-Control", "no-store");
        ctx.body = {
          error: "invalid_client",
          error_description: `client authentication failed (client is registered for ${spec?.authMethod})`,
        };
        lastTokenError = {
          clientId,
          status: 401,
          error: "invalid_client",
          description: ctx.body.error_description,
          detail: `client used ${usedBasic ? "client_secret_basic" : "client_secret_post"}`,
        };
        return;
      }
      issuedTotal += 1;
      bump(issued, clientId);
    });

    const findToken = async (token: string): Promise<AccessTokenInfo | undefined> => {
      if (typeof token !== "string" || !token) return undefined;
      const found = await provider.ClientCredentials.find(token);
      // BaseModel.find tolerates clockTolerance past exp; a test peer should be exact.
      if (!found || typeof found.exp !== "number" || found.exp <= epoch()) return undefined;
      return {
        clientId: found.clientId as string,
        scope: found.scope as string | undefined,
        iat: found.iat as number,
        exp: found.exp,
      };
    };

    const callback = provider.callback();
    server.on("request", (req, res) => {
      void callback(req, res);
    });

    return {
      issuer,
      tokenUrl,
      port,
      tokenRequests: (clientId?: string) => (clientId === undefined ? requestsTotal : requests.get(clientId) ?? 0),
      tokensIssued: (clientId?: string) => (clientId === undefined ? issuedTotal : issued.get(clientId) ?? 0),
      get lastAssertion() {
        return lastAssertion;
      },
      get lastTokenError() {
        return lastTokenError;
      },
      verifyAccessToken: async (token: string) => (await findToken(token)) !== undefined,
      inspectAccessToken: findToken,
      invalidate: async (token: string) => {
        await provider.ClientCredentials.adapter.destroy(token);
      },
      revokeAll: async () => {
        for (const k of [...store.keys()]) if (k.startsWith("ClientCredentials:")) store.delete(k);
      },
      setAccessTokenTtl: (seconds: number) => {
        checkTtl(seconds);
        accessTokenTtl = seconds;
      },
      resetCounters: () => {
        requests.clear();
        issued.clear();
        requestsTotal = 0;
        issuedTotal = 0;
        lastAssertion = undefined;
        lastTokenError = undefined;
      },
      close: () =>
        new Promise<void>((resolve, reject) => {
          server.close((err) => (err ? reject(err) : resolve()));
          server.closeAllConnections();
        }),
    };
  }
}

export { ASSERTION_TYPE };
