import type { MiddlewareHandler } from "hono";
import { UnauthenticatedError } from "../../errors.ts";
import type { ClientIdentity, EdgeHonoEnv } from "../../context.ts";
import { findSecret } from "../constant-time.ts";


/** Bearer or X-Api-Key, whichever the client sent. */
export function presentedCredential(headers: Headers): string | undefined {
  const apiKey = headers.get("X-Api-Key");
  if (apiKey) return apiKey.trim();
  const authorization = headers.get("Authorization");
  const match = authorization ? /^Bearer[ \t]+(\S+)\s*$/i.exec(authorization) : null;
  return match?.[1];
}

/**
 * `PROXY_AUTH=api-key`: the client shows one of `PROXY_API_KEYS` as
 * `Authorization: Bearer <key>` or `X-Api-Key: <key>`, compared with every
 * configured key in constant time, synchronously.
 * @see docs/configuration.md#who-may-call-the-edge
 */
export const apiKeyAuth = (keys: ReadonlyArray<{ client: string; key: string }>): MiddlewareHandler<EdgeHonoEnv> => {
  const verify = apiKeyVerifier(keys);
  return async (c, next) => {
    const presented = presentedCredential(c.req.raw.headers);
    if (!presented) {
      throw new UnauthenticatedError("missing-credentials", "This edge needs an API key (Authorization: Bearer <key> or X-Api-Key)", 'Bearer realm="fhir-edge"');
    }
    c.set("client", verify(presented));
    await next();
  };
};

/**
 * Names the client whose key `presented` is, compared with every configured
 * key in constant time; throws {@link UnauthenticatedError} when none matches.
 * Used by {@link apiKeyAuth} and by the console's sign-in form.
 */
export function apiKeyVerifier(keys: ReadonlyArray<{ client: string; key: string }>): (presented: string) => ClientIdentity {
  const secrets = keys.map((k) => k.key);
  return (presented) => {
    const index = findSecret(presented, secrets);
    if (index === -1) {
      throw new UnauthenticatedError("invalid-credentials", "The API key is not valid", 'Bearer realm="fhir-edge", error="invalid_token"');
    }
    return { name: keys[index]!.client };
  };
}
