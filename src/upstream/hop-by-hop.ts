/**
 * Hop-by-hop headers apply to one connection and are never forwarded (lower case).
 * Configuration reuses this list for the headers it refuses to let a source or
 * a channel target set. Its own file, so configuration (which Node scripts also
 * load) does not pull in the forwarder.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
