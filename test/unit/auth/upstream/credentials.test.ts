import { describe, expect, it } from "vitest";
import { staticCredentials } from "../../../../src/auth/upstream/credentials.ts";
import type { SourceConfig } from "../../../../src/config/types.ts";

describe("static upstream credentials: basic auth", () => {
  it("sends the UTF-8 user:password in standard base64 and keeps the encoded value secret", async () => {
    const source = { auth: { kind: "basic", username: "Zoë", password: "pässwörd" } } as unknown as SourceConfig;
    const credentials = staticCredentials(source);
    // RFC 7617's charset="UTF-8": "Zoë:pässwörd" as UTF-8 bytes, base64.
    expect(await credentials?.authorization()).toBe("Basic Wm/Dqzpww6Rzc3fDtnJk");
    expect(credentials?.secrets()).toContain("Wm/Dqzpww6Rzc3fDtnJk");
  });
});
