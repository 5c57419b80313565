import type { UpstreamAuth } from "../../config/types.ts";
import { isHttpUrl } from "../../url.ts";
import { fetchWithTimeout } from "../../fetch-with-timeout.ts";
import { CLIENT_ASSERTION_TYPE, signAssertion, type AssertionKey } from "./assertion.ts";

export type OAuthAuth = Extract<UpstreamAuth, { kind: "client-credentials" | "jwt-assertion" }>;

/** `application/x-www-form-urlencoded` as RFC 6749 appendix B wants it (space as `+`). */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, "+");
}

/**
 * The request step of the client credentials grant: builds and sends the
 * token request, returns the Response for {@link processTokenResponse}.
 * client_secret_basic encodes id and secret before base64, as RFC 6749
 * section 2.3.1 requires (many servers break on a secret with `:` otherwise).
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html
 */
export async function requestToken(
  auth: OAuthAuth,
  tokenUrl: string,
  signingKey: AssertionKey | undefined,
  fetcher: (request: Request) => Promise<Response>,
  now: number,
  timeoutMs: number,
): Promise<Response> {
  const form = new URLSearchParams({ grant_type: "client_credentials", scope: auth.scope });
  if (auth.audience) form.set("audience", auth.audience);
  const headers = new Headers({ "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" });
  if (auth.kind === "jwt-assertion") {
    if (!signingKey) throw new Error("no signing key");
    form.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
    form.set("client_assertion", await signAssertion(signingKey, auth.clientId, tokenUrl, now));
  } else if (auth.tokenAuth === "post") {
    form.set("client_id", auth.clientId);
    form.set("client_secret", auth.clientSecret);
  } else {
    headers.set("Authorization", `Basic ${btoa(`${formEncode(auth.clientId)}:${formEncode(auth.clientSecret)}`)}`);
  }
  return fetchWithTimeout(tokenUrl, { method: "POST", headers, body: form.toString(), redirect: "manual" }, timeoutMs, fetcher);
}

const OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/**
 * Finds a source's token endpoint when `token_url` is not configured: SMART
 * discovery at `<base>/.well-known/smart-configuration`, then the
 * CapabilityStatement's `oauth-uris` extension.
 * @see https://hl7.org/fhir/smart-app-launch/conformance.html
 */
export async function discoverTokenUrl(baseUrl: string, fetcher: (request: Request) => Promise<Response>, timeoutMs: number): Promise<string | undefined> {
  const get = (url: string) => fetchWithTimeout(url, { headers: { Accept: "application/json" }, redirect: "manual" }, timeoutMs, fetcher);
  try {
    const res = await get(`${baseUrl}/.well-known/smart-configuration`);
    if (res.ok) {
      const config = (await res.json()) as { token_endpoint?: unknown };
      if (typeof config.token_endpoint === "string" && isHttpUrl(config.token_endpoint)) return config.token_endpoint;
    } else await res.body?.cancel();
  } catch {
    // fall through to metadata
  }
  try {
    const res = await get(`${baseUrl}/metadata`);
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const statement = (await res.json()) as { rest?: Array<{ security?: { extension?: Array<{ url?: string; extension?: Array<{ url?: string; valueUri?: string }> }> } }> };
    for (const rest of statement.rest ?? []) {
      for (const ext of rest.security?.extension ?? []) {
        if (ext.url !== OAUTH_URIS) continue;
        const token = ext.extension?.find((e) => e.url === "token")?.valueUri;
        if (token && isHttpUrl(token)) return token;
      }
    }
  } catch {
    return undefined;
  }
  return undefined;
}

