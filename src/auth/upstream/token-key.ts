import type { SourceConfig } from "../../config/types.ts";
import { toHex } from "../../crypto.ts";

/**
 * Identifies a source's OAuth client configuration, so a token cached for an
 * old configuration (another client id, scope, token URL) is never reused.
 * Not a secret: a short hash of non-secret fields and of the credential.
 */
export async function grantFingerprint(source: SourceConfig): Promise<string> {
  const auth = source.auth;
  if (auth.kind !== "client-credentials" && auth.kind !== "jwt-assertion") return "none";
  const material = JSON.stringify([
    source.baseUrl,
    auth.kind,
    auth.clientId,
    auth.scope,
    auth.tokenUrl ?? "",
    auth.audience ?? "",
    auth.kind === "client-credentials" ? [auth.clientSecret, auth.tokenAuth] : [auth.privateKey, auth.kid ?? "", auth.alg],
  ]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material)));
  return toHex(digest.slice(0, 8));
}

/** The KV key of a source's cached token. */
export function tokenKvKey(sourceName: string, fingerprint: string): string {
  return `token:v1:${sourceName}:${fingerprint}`;
}
