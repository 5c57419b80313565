import type { MiddlewareHandler } from "hono";
import { UnauthenticatedError } from "../../errors.ts";
import type { EdgeHonoEnv } from "../../context.ts";
import { digest, findSecret } from "../constant-time.ts";

const digestsCache = new WeakMap<object, Promise<ArrayBuffer[]>>();

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
 * `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Keys are hashed once
 * per isolate and compared in constant time.
 * @see ../../../../shared/design.md section 2
 */
export const apiKeyAuth = (keys: ReadonlyArray<{ client: string; key: string }>): MiddlewareHandler<EdgeHonoEnv> => {
  return async (c, next) => {
    const presented = presentedCredential(c.req.raw.headers);
    if (!presented) {
      throw new UnauthenticatedError("missing-credentials", "This edge needs an API key (Authorization: Bearer <key> or X-Api-Key)", 'Bearer realm="fhir-edge"');
    }
    let digests = digestsCache.get(keys);
    if (!digests) {
      digests = Promise.all(keys.map((k) => digest(k.key)));
      digestsCache.set(keys, digests);
    }
    const index = await findSecret(presented, await digests);
    if (index === -1) {
      throw new UnauthenticatedError("invalid-credentials", "The API key is not valid", 'Bearer realm="fhir-edge", error="invalid_token"');
    }
    c.set("client", { name: keys[index]!.client });
    await next();
  };
};
