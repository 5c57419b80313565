import type { Context } from "hono";
import type { EdgeHonoEnv } from "../../context.ts";
import { assertionKeys } from "./assertion-keys.ts";

/**
 * `GET /.well-known/jwks.json`: the public keys of every JWT-assertion source
 * (all keys of a rotation set), so an EHR can register the edge by JWKS URL.
 * Public by design. A source whose key does not import is left out (its
 * requests fail with `invalid-private-key`, and `/status` shows it).
 * @see https://hl7.org/fhir/smart-app-launch/backend-services.html#registering-a-client-communicating-public-keys
 */
export const jwksHandler = async (c: Context<EdgeHonoEnv>): Promise<Response> => {
  c.set("logRoute", ".well-known/jwks.json");
  const keys = [];
  const seen = new Set<string>();
  for (const source of c.get("config").sources.values()) {
    const imported = assertionKeys(source);
    if (!imported) continue;
    try {
      for (const key of await imported) {
        const id = `${key.publicJwk.kid}|${key.publicJwk.kty}`;
        if (seen.has(id)) continue;
        seen.add(id);
        keys.push(key.publicJwk);
      }
    } catch {
      // reported per source
    }
  }
  return c.json({ keys }, 200, { "Cache-Control": "public, max-age=300", "Content-Type": "application/jwk-set+json" });
};
