import type { Context, MiddlewareHandler } from "hono";
import { verifyCredential } from "../../auth/inbound/index.ts";
import { clearedSession, fromEdgeOrigin, issueSession, readSession, sessionOrInbound } from "../../auth/inbound/session-cookie.ts";
import type { EdgeHonoEnv } from "../../context.ts";
import { ForbiddenError, InvalidRequestError, UnauthenticatedError } from "../../errors.ts";
import type { ForwardDeps } from "../../upstream/forward.ts";
import { readLimited } from "../../read-limited.ts";
import { requireAdmin } from "../require-admin.ts";
import { buildStatus } from "../status.ts";
import { timeLeft } from "./format.ts";
import { prefersHtml } from "./negotiate.ts";
import { ConsolePage } from "./page.tsx";
import { consoleHeaders, newNonce } from "./security.ts";
import { SignInPage } from "./sign-in.tsx";
import { StatusView } from "./status-view.tsx";

/** A sign-in form is a key or a JWT: a few KB at most. */
const MAX_FORM_BYTES = 16 * 1024;

/**
 * The path the edge is mounted under ("" at the root), from the matched
 * route: links and form actions keep it, and stay on the page's own origin
 * (a `PUBLIC_URL` on another origin would be outside the page's CSP).
 */
function consoleRoot(c: Context): string {
  const path = new URL(c.req.url).pathname.replace(/\/+$/, "");
  const own = CONSOLE_PATHS.find((suffix) => path.endsWith(suffix));
  return own ? path.slice(0, -own.length) : path;
}

/** The console's own paths below the edge's root (`GET /` is the root itself). */
const CONSOLE_PATHS = ["/status", "/admin/console/live", "/admin/console/sign-in", "/admin/console/sign-out"];

async function html(c: Context<EdgeHonoEnv>, page: string, nonce: string, status = 200): Promise<Response> {
  const body = `<!DOCTYPE html>${page}`;
  return c.body(body, status as 200, { "Content-Type": "text/html; charset=utf-8", ...consoleHeaders(nonce) });
}

async function render(node: { toString(): string | Promise<string> }): Promise<string> {
  return await node.toString();
}

/** The whole console page for the status report (from `GET /status` or `GET /` asked for HTML). */
export async function renderConsole(c: Context<EdgeHonoEnv>, report: unknown, now: number): Promise<Response> {
  const nonce = newNonce();
  const root = consoleRoot(c);
  const session = await readSession(c.env, c.req.header("Cookie"), now);
  const page = (
    <ConsolePage nonce={nonce} root={root} client={`signed in as ${c.get("client").name}`} sessionLeft={session.ok ? timeLeft(new Date(session.expiresAt).toISOString(), now) : undefined}>
      <StatusView report={report} now={now} root={root} />
    </ConsolePage>
  );
  return html(c, await render(page), nonce);
}

/** `GET /admin/console/live`: the refreshing part of the page alone, for the page's script. */
export const liveFragmentHandler = (deps: ForwardDeps) => async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  c.set("logRoute", "admin/console/live");
  const report = await buildStatus(c, deps);
  const nonce = newNonce();
  const view = <StatusView report={report} now={deps.now()} root={consoleRoot(c)} />;
  return c.body(await render(view), 200, { "Content-Type": "text/html; charset=utf-8", ...consoleHeaders(nonce) });
};

/**
 * The console's gate: a session cookie or the usual credentials, and an
 * admin client. A browser (asking for HTML) that is not signed in is sent
 * to the sign-in form instead of getting an OperationOutcome; a signed-in
 * client that is not an admin sees the form with why.
 */
export const consoleGate =
  (now: () => number): MiddlewareHandler<EdgeHonoEnv> =>
  async (c, next) => {
    const browser = prefersHtml(c.req.header("Accept"));
    let passed = false;
    try {
      await sessionOrInbound(now)(c, async () => {
        await requireAdmin()(c, async () => {
          passed = true;
        });
      });
    } catch (error) {
      if (!browser) throw error;
      const root = consoleRoot(c);
      if (error instanceof UnauthenticatedError) {
        const reason = error.code === "session-expired" ? "?expired=1" : "";
        return c.redirect(`${root}/admin/console/sign-in${reason}`, 303);
      }
      if (error instanceof ForbiddenError) {
        const nonce = newNonce();
        const mode = c.get("config").inbound?.mode ?? "api-key";
        return html(c, await render(<SignInPage nonce={nonce} root={root} mode={mode} message={`${error.message}.`} />), nonce, 403);
      }
      throw error;
    }
    if (passed) await next();
  };

/**
 * Whether a form post comes from the edge's own pages: its `Origin` is the
 * request's origin (or `PUBLIC_URL`'s). With SameSite=Strict this closes
 * cross-site request forgery on sign-in and sign-out.
 * @see https://owasp.org/www-community/attacks/csrf
 */
function checkOrigin(c: Context<EdgeHonoEnv>): void {
  if (!fromEdgeOrigin(c)) throw new ForbiddenError("cross-origin-form", "The console's forms only accept posts from the console's own pages (Origin)");
}

/** `GET /admin/console/sign-in`: the form. */
export const signInFormHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  c.set("logRoute", "admin/console/sign-in");
  const root = consoleRoot(c);
  const mode = c.get("config").inbound?.mode;
  if (mode === "none") return c.redirect(`${root}/status`, 303);
  const nonce = newNonce();
  const message = c.req.query("expired") !== undefined ? "Your session has expired; sign in again." : undefined;
  return html(c, await render(<SignInPage nonce={nonce} root={root} mode={mode ?? "api-key"} message={message} />), nonce);
};

/**
 * `POST /admin/console/sign-in`: checks the key (or JWT) from the form by
 * the edge's own rule (constant time for keys), requires an admin client,
 * and sets the signed session cookie. A refusal shows the form again and
 * sets nothing.
 */
export const signInHandler =
  (now: () => number) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    c.set("logRoute", "admin/console/sign-in");
    checkOrigin(c);
    const root = consoleRoot(c);
    const config = c.get("config");
    const mode = config.inbound?.mode ?? "api-key";
    // Read with a cap on the bytes themselves, so a chunked body cannot get past it.
    const form = new URLSearchParams(await readLimited(c.req.raw, MAX_FORM_BYTES, { code: "form-too-large", message: "The sign-in form is too large" }));
    const credential = (form.get("credential") ?? "").trim();
    const again = async (status: number, message: string) => {
      const nonce = newNonce();
      return html(c, await render(<SignInPage nonce={nonce} root={root} mode={mode} message={message} />), nonce, status);
    };
    let verified;
    try {
      verified = await verifyCredential(config.inbound, credential);
    } catch (error) {
      if (error instanceof UnauthenticatedError) return again(401, mode === "jwt" ? "That token is not valid for this edge." : "That key is not valid.");
      throw error;
    }
    if (!config.adminClients.has(verified.client.name)) return again(403, `Client ${verified.client.name} is not in PROXY_ADMIN_CLIENTS.`);
    const { setCookie } = await issueSession(c.env, verified.client.name, now(), verified.expiresAt);
    c.header("Set-Cookie", setCookie);
    c.header("Cache-Control", "no-store");
    return c.redirect(`${root}/status`, 303);
  };

/** `POST /admin/console/sign-out`: clears the cookie and shows the form. */
export const signOutHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  c.set("logRoute", "admin/console/sign-out");
  checkOrigin(c);
  c.header("Set-Cookie", clearedSession());
  c.header("Cache-Control", "no-store");
  return c.redirect(`${consoleRoot(c)}/admin/console/sign-in`, 303);
};
