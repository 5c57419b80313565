import type { Child } from "hono/jsx";
import { REFRESH_SCRIPT } from "./refresh-script.ts";
import { CONSOLE_CSS } from "./styles.ts";

/** Seconds between the console's refreshes. */
export const REFRESH_SECONDS = 5;

/** The HTML document around every console page: inline style and script under the response's nonce, nothing loaded from anywhere. */
export function Document({ title, nonce, children, script = false }: { title: string; nonce: string; children: Child; script?: boolean }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <meta name="robots" content="noindex" />
        <title>{title}</title>
        {/* No favicon request: the edge has none, and a 404 would be noise. */}
        <link rel="icon" href="data:," />
        <style nonce={nonce} dangerouslySetInnerHTML={{ __html: CONSOLE_CSS }} />
      </head>
      <body>
        {children}
        {script ? <script nonce={nonce} dangerouslySetInnerHTML={{ __html: REFRESH_SCRIPT }} /> : null}
      </body>
    </html>
  );
}

/** The console: header with who is signed in and sign-out, the live status, a footer. */
export function ConsolePage(props: { nonce: string; root: string; client: string; sessionLeft: string | undefined; children: Child }) {
  return (
    <Document title="fhir-edge console" nonce={props.nonce} script>
      <header class="top">
        <h1>fhir-edge console</h1>
        <span class="who">
          {`${props.client}`}
          {props.sessionLeft ? `, session ends ${props.sessionLeft}` : ""}
        </span>
        <form method="post" action={`${props.root}/admin/console/sign-out`}>
          <button type="submit">Sign out</button>
        </form>
      </header>
      <main id="live" data-src={`${props.root}/admin/console/live`} data-every={String(REFRESH_SECONDS)} aria-live="polite">
        {props.children}
      </main>
      <footer>
        <span id="live-note">Refreshes every {REFRESH_SECONDS} s.</span> The same data as JSON: <code>curl -H "X-Api-Key: …" {props.root}/status</code>
      </footer>
    </Document>
  );
}
