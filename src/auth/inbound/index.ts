import type { MiddlewareHandler } from "hono";
import type { InboundAuthConfig } from "../../config/edge-config.ts";
import { ConfigurationError, UnauthenticatedError } from "../../errors.ts";
import type { EdgeHonoEnv } from "../../context.ts";
import { apiKeyAuth, apiKeyVerifier } from "./api-key.ts";
import { jwtAuth, jwtVerifier, type VerifiedClient } from "./jwt.ts";

/** One inbound mode, built once per configuration: the middleware, and the same check for a credential given another way (the console's sign-in form). */
interface Authenticator {
  middleware: MiddlewareHandler<EdgeHonoEnv>;
  verify: (credential: string) => Promise<VerifiedClient>;
}

const byConfig = new WeakMap<object, Authenticator>();

function authenticatorFor(inbound: InboundAuthConfig): Authenticator {
  let built = byConfig.get(inbound);
  if (built) return built;
  switch (inbound.mode) {
    case "none":
      built = {
        middleware: async (ctx, nxt) => {
          ctx.set("client", { name: "anonymous" });
          await nxt();
        },
        verify: async () => ({ client: { name: "anonymous" } }),
      };
      break;
    case "api-key": {
      const verify = apiKeyVerifier(inbound.keys);
      built = { middleware: apiKeyAuth(inbound.keys), verify: async (credential) => ({ client: verify(credential) }) };
      break;
    }
    case "jwt": {
      // The middleware and the sign-in form share one verifier, so one JWKS cache.
      const verify = jwtVerifier(inbound);
      built = { middleware: jwtAuth(inbound, verify), verify };
      break;
    }
  }
  byConfig.set(inbound, built);
  return built;
}

function requireInbound(inbound: InboundAuthConfig | undefined): InboundAuthConfig {
  if (!inbound) {
    throw new ConfigurationError("auth-misconfigured", "The edge's client authentication (PROXY_AUTH) is misconfigured; see GET /status");
  }
  return inbound;
}

/**
 * Authenticates the caller per `PROXY_AUTH`; a broken setting fails closed.
 * The middleware is built once per configuration, not per request.
 */
export const inboundAuth = (): MiddlewareHandler<EdgeHonoEnv> => async (c, next) => {
  return authenticatorFor(requireInbound(c.get("config").inbound)).middleware(c, next);
};

/**
 * Checks a credential presented outside the usual headers (an API key or a
 * JWT typed into the console's sign-in form) by the same rule as
 * {@link inboundAuth}; throws `UnauthenticatedError` when it does not verify.
 */
export async function verifyCredential(inbound: InboundAuthConfig | undefined, credential: string): Promise<VerifiedClient> {
  const checked = requireInbound(inbound);
  if (credential === "" && checked.mode !== "none") {
    throw new UnauthenticatedError("missing-credentials", "Give an admin API key or JWT", 'Bearer realm="fhir-edge"');
  }
  return authenticatorFor(checked).verify(credential);
}
