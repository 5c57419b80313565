import { describe, expect, it } from "vitest";
import { oauthCredentials } from "../../../../src/auth/upstream/oauth-credentials.ts";
import { edgeConfig } from "../../../../src/config/edge-config.ts";
import type { EdgeBindings } from "../../../../src/context.ts";

/**
 * The isolate's side of the token cache, with a stand-in for the source's
 * TokenCoordinator (its own behaviour is tested against a real OAuth server
 * in test/integration/auth-broker.test.ts): each `token()` issues the next token.
 */
function setup() {
  let issued = 0;
  const invalidated: string[] = [];
  const coordinator = {
    token: async () => ({ ok: true, grant: { accessToken: `token-${++issued}`, expiresAt: null, refreshAt: null } }),
    invalidate: async (_source: string, token: string) => {
      invalidated.push(token);
    },
  };
  const env = { TOKEN_COORDINATOR: { idFromName: (name: string) => name, get: () => coordinator } } as unknown as EdgeBindings;
  const source = edgeConfig({ FHIR_SOURCE_EHR: "fhir://ehr.example/fhir?client_id=edge&client_secret=s3cret-value&token_url=https://auth.example/token" }).sources.get("ehr")!;
  return { credentials: oauthCredentials(source, env, () => 0), issued: () => issued, invalidated };
}

describe("invalidate(token) clears only the token that was refused", () => {
  it("a late 401 on the old token does not drop the fresh one", async () => {
    const { credentials, issued, invalidated } = setup();
    expect(await credentials.authorization()).toBe("Bearer token-1");
    // Request A: 401 on token-1, refresh, retry with token-2.
    expect(await credentials.invalidate("Bearer token-1")).toBe(true);
    expect(await credentials.authorization()).toBe("Bearer token-2");
    // Request B had also sent token-1; its 401 arrives now.
    expect(await credentials.invalidate("Bearer token-1")).toBe(true);
    expect(await credentials.authorization()).toBe("Bearer token-2");
    expect(issued()).toBe(2);
    expect(invalidated).toEqual(["token-1", "token-1"]);
  });

  it("a 401 on the held token drops it, and the next request gets a new one", async () => {
    const { credentials, issued } = setup();
    await credentials.authorization();
    await credentials.invalidate("Bearer token-1");
    expect(await credentials.authorization()).toBe("Bearer token-2");
    await credentials.invalidate("Bearer token-2");
    expect(await credentials.authorization()).toBe("Bearer token-3");
    expect(issued()).toBe(3);
  });
});
