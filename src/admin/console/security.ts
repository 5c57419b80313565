import { toBase64 } from "../../crypto.ts";

/**
 * The console's response headers. Everything the page needs is inline and
 * carries a per-response nonce, so the policy can forbid everything else:
 * no other origin is ever contacted, no plugin, no framing, no form posting
 * elsewhere, no `<base>` rewriting the links.
 * @see https://www.w3.org/TR/CSP3/
 */
export function consoleHeaders(nonce: string): Record<string, string> {
  const csp = [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
  return {
    "Content-Security-Policy": csp,
    "Cache-Control": "no-store",
    // Not no-referrer: under it browsers send `Origin: null` on the forms' own posts, which the
    // origin check must refuse. same-origin sends nothing to any other origin.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    Vary: "Accept, Cookie",
  };
}

/** 128 random bits, base64: a fresh one for every page. */
export function newNonce(): string {
  return toBase64(crypto.getRandomValues(new Uint8Array(16)));
}
