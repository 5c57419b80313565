import type { MiddlewareHandler } from "hono";
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from "jose";
import type { EdgeHonoEnv } from "../../context.ts";
import { UnauthenticatedError, UpstreamUnavailableError } from "../../errors.ts";

const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

/**
 * `PROXY_AUTH=jwt`: `Authorization: Bearer <JWT>` verified with jose against
 * the remote JWKS (fetched once, cached per isolate, refetched on an unknown
 * `kid`), the issuer and the audience. Asymmetric algorithms only. The
 * client's name is the token's `sub`; its SMART scopes come from `scope`
 * (space-separated) or `scp` (array).
 * @see ../../../../shared/design.md section 2
 */
export const jwtAuth = (settings: { jwksUrl: string; issuer: string; audience: string }): MiddlewareHandler<EdgeHonoEnv> => {
  const jwks = createRemoteJWKSet(new URL(settings.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 5_000 });
  const challenge = (error?: string) => `Bearer realm="fhir-edge"${error ? `, error="${error}"` : ""}`;
  return async (c, next) => {
    const header = c.req.header("Authorization");
    const match = header ? /^Bearer[ \t]+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new UnauthenticatedError("missing-credentials", "This edge needs a bearer JWT (Authorization: Bearer <token>)", challenge());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1]!, jwks, { issuer: settings.issuer, audience: settings.audience, algorithms: ALGORITHMS }));
    } catch (error) {
      if (error instanceof errors.JWKSTimeout || (error instanceof TypeError && !(error instanceof errors.JOSEError))) {
        throw new UpstreamUnavailableError("jwks-unavailable", "The JWKS that verifies client tokens could not be fetched", error);
      }
      if (error instanceof errors.JWTExpired) throw new UnauthenticatedError("token-expired", "The token has expired", challenge("invalid_token"));
      throw new UnauthenticatedError("invalid-token", "The token is not valid for this edge (signature, issuer or audience)", challenge("invalid_token"));
    }
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw new UnauthenticatedError("invalid-token", "The token has no sub claim", challenge("invalid_token"));
    }
    const scope = payload.scope ?? payload.scp;
    const scopes = typeof scope === "string" ? scope.split(/\s+/).filter(Boolean) : Array.isArray(scope) ? scope.filter((s): s is string => typeof s === "string") : [];
    c.set("client", { name: payload.sub, scopes });
    await next();
  };
};
