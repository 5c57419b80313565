import type { Context, MiddlewareHandler } from "hono";
import type { EdgeHonoEnv } from "../../context.ts";
import { UnauthenticatedError } from "../../errors.ts";
import { inboundAuth } from "./index.ts";
import { fromBase64url, toBase64url } from "../../crypto.ts";
import { hmacKeyOrIsolateKey, signToken, verifyToken } from "../../signed-token.ts";

/**
 * The console's session cookie. `__Host-` makes the browser insist on
 * Secure, Path=/ and no Domain, so no sibling host can set or shadow it.
 * @see https://www.rfc-editor.org/rfc/rfc6265bis (cookie prefixes, SameSite)
 */
export const SESSION_COOKIE = "__Host-fhir-edge-console";
/** A session lasts 30 minutes (less when the JWT it was made from expires sooner); then sign in again. */
export const SESSION_TTL_SECONDS = 30 * 60;
/** Sessions are signed under this label, so no other HMAC the edge makes can pass for one. */
const SIGNING_LABEL = "fhir-edge console session v1.";
/** Below this a `CONSOLE_SESSION_SECRET` still works, but /status says to use a longer one. */
export const MIN_SECRET_LENGTH = 32;

interface SessionPayload {
  /** The client name the session stands for. */
  sub: string;
  /** Issued and expires, epoch seconds. */
  iat: number;
  exp: number;
}

export type SessionCheck =
  | { ok: true; client: string; expiresAt: number }
  | { ok: false; reason: "absent" | "malformed" | "bad-signature" | "expired" };

const encoder = new TextEncoder();

/**
 * The HMAC key sessions are signed with: `CONSOLE_SESSION_SECRET` when set
 * (sessions then hold across isolates and deploys), else the isolate's random
 * key (a session then only holds on the isolate that made it).
 */
function sessionKey(env: Readonly<Record<string, unknown>>): Promise<CryptoKey> {
  const secret = env.CONSOLE_SESSION_SECRET;
  return hmacKeyOrIsolateKey(typeof secret === "string" ? secret : undefined);
}

/** For `/status`: where the session key comes from, never the key. */
export function sessionKeySource(env: Readonly<Record<string, unknown>>): string {
  const secret = env.CONSOLE_SESSION_SECRET;
  if (typeof secret !== "string" || secret === "") {
    return "per isolate: CONSOLE_SESSION_SECRET is not set, so a console session only holds on the isolate that signed it in";
  }
  return secret.length < MIN_SECRET_LENGTH ? `CONSOLE_SESSION_SECRET (shorter than ${MIN_SECRET_LENGTH} characters: use a longer random one)` : "CONSOLE_SESSION_SECRET";
}

/**
 * A signed session for `client`, as a `Set-Cookie` value: HttpOnly (no
 * script reads it), Secure, SameSite=Strict (no other site's page sends it),
 * Path=/, expiring after {@link SESSION_TTL_SECONDS} or at `notAfter`
 * (epoch ms, a JWT's `exp`), whichever is sooner.
 * @see https://www.rfc-editor.org/rfc/rfc2104 (HMAC)
 */
export async function issueSession(
  env: Readonly<Record<string, unknown>>,
  client: string,
  now: number,
  notAfter?: number,
): Promise<{ setCookie: string; expiresAt: number }> {
  const iat = Math.floor(now / 1000);
  const exp = Math.min(iat + SESSION_TTL_SECONDS, notAfter === undefined ? Infinity : Math.floor(notAfter / 1000));
  const payload = toBase64url(encoder.encode(JSON.stringify({ sub: client, iat, exp } satisfies SessionPayload)));
  const token = await signToken(await sessionKey(env), SIGNING_LABEL, payload);
  const maxAge = Math.max(0, exp - iat);
  return { setCookie: `${SESSION_COOKIE}=${token}; Max-Age=${maxAge}; Path=/; HttpOnly; Secure; SameSite=Strict`, expiresAt: exp * 1000 };
}

/** The `Set-Cookie` value that ends the session in the browser. */
export function clearedSession(): string {
  return `${SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Strict`;
}

/** The session cookie's value in a `Cookie` header, if there is one. */
function sessionCookieValue(cookieHeader: string | null | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Checks a session cookie: its HMAC (`verifyToken`: strict base64url,
 * constant time) and its expiry against `now` (epoch ms).
 */
export async function readSession(env: Readonly<Record<string, unknown>>, cookieHeader: string | null | undefined, now: number): Promise<SessionCheck> {
  const value = sessionCookieValue(cookieHeader);
  if (value === undefined || value === "") return { ok: false, reason: "absent" };
  const dot = value.indexOf(".");
  if (dot === -1 || !fromBase64url(value.slice(dot + 1)) || value.length > 2048) return { ok: false, reason: "malformed" };
  const payloadText = await verifyToken(await sessionKey(env), SIGNING_LABEL, value);
  if (payloadText === undefined) return { ok: false, reason: "bad-signature" };
  let payload: Partial<SessionPayload>;
  try {
    payload = JSON.parse(new TextDecoder().decode(fromBase64url(payloadText))) as Partial<SessionPayload>;
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (typeof payload.sub !== "string" || typeof payload.exp !== "number") return { ok: false, reason: "malformed" };
  if (payload.exp * 1000 <= now) return { ok: false, reason: "expired" };
  return { ok: true, client: payload.sub, expiresAt: payload.exp * 1000 };
}

/**
 * The console's routes (and `GET /status`, the replay links): a valid
 * session cookie is a credential, standing for the client that signed in;
 * otherwise the usual inbound authentication. Credentials in headers win
 * over the cookie. A cookie that fails (tampered, expired, or for a client
 * no longer configured) is refused with 401 rather than ignored, so the
 * browser is sent to sign in again. The client still has to pass
 * `requireAdmin` after this.
 */
export const sessionOrInbound =
  (now: () => number = Date.now): MiddlewareHandler<EdgeHonoEnv> =>
  async (c, next) => {
    const headers = c.req.raw.headers;
    const cookie = headers.get("Cookie");
    const inbound = c.get("config").inbound;
    // No inbound setting fails closed there; credentials in headers win.
    if (!inbound || headers.has("Authorization") || headers.has("X-Api-Key") || sessionCookieValue(cookie) === undefined) {
      return inboundAuth()(c, next);
    }
    const session = await readSession(c.env, cookie, now());
    const stillKnown = session.ok && (inbound.mode !== "api-key" || inbound.keys.some((k) => k.client === session.client));
    if (!session.ok || !stillKnown) {
      const expired = !session.ok && session.reason === "expired";
      throw new UnauthenticatedError(
        expired ? "session-expired" : "session-invalid",
        expired ? "The console session has expired; sign in again" : "The console session is not valid; sign in again",
        'Bearer realm="fhir-edge"',
      );
    }
    c.set("client", { name: session.client });
    c.set("viaSession", true);
    await next();
  };

/**
 * Whether a request comes from the edge's own pages: its `Origin` is the
 * request's origin, or `PUBLIC_URL`'s. A request without `Origin` does not.
 * With SameSite=Strict this is what keeps another site from acting with the
 * session cookie (a cross-site form post, or a WebSocket, which SameSite
 * alone does not cover for a same-site but foreign origin).
 * @see https://owasp.org/www-community/attacks/csrf
 * @see https://www.rfc-editor.org/rfc/rfc6455#section-10.2
 */
export function fromEdgeOrigin(c: Context<EdgeHonoEnv>): boolean {
  const origin = c.req.header("Origin");
  const publicUrl = c.get("config").publicUrl;
  return origin !== undefined && (origin === new URL(c.req.url).origin || (publicUrl !== undefined && origin === new URL(publicUrl).origin));
}
