import { Document } from "./page.tsx";

/**
 * The sign-in form: an admin API key (or, with `PROXY_AUTH=jwt`, a JWT) is
 * posted in the body, never put in a URL; autocomplete is off so the
 * browser does not offer to keep it.
 */
export function SignInPage({ nonce, root, message, mode }: { nonce: string; root: string; message?: string | undefined; mode: string }) {
  const what = mode === "jwt" ? "admin JWT" : "admin API key";
  return (
    <Document title="Sign in: fhir-edge console" nonce={nonce}>
      <form class="signin" method="post" action={`${root}/admin/console/sign-in`}>
        <h1>fhir-edge console</h1>
        {message ? (
          <p class="error" role="alert">
            {message}
          </p>
        ) : null}
        <label for="credential">Your {what}</label>
        <input id="credential" name="credential" type="password" autocomplete="off" required autofocus spellcheck={false} />
        <button type="submit">Sign in</button>
        <p class="muted">
          A client named in PROXY_ADMIN_CLIENTS. The key is checked once; the browser then keeps a signed session cookie for at most 30 minutes.
        </p>
      </form>
    </Document>
  );
}
