/**
 * "No folder other than src/upstream/ builds an upstream request"
 * (docs/upstream-client.md): the source tree is read, and every outbound
 * call outside src/upstream/ must be on the allow-list below, each with the
 * reason it is not a request to a source. A Node test because it reads files.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/** Calls that send a request, or build one's parts: a fetch, the retry loop, a source's credentials or request headers. */
const OUTBOUND = /(?<![\w#.$])(fetch|fetchWithTimeout|forward|credentialsFor|upstreamRequestHeaders)\(|new Request\(/g;

/**
 * Outbound calls outside src/upstream/, by file and callee, each with why it
 * is allowed. Anything else that calls out of the edge to a source goes
 * through sourceClient() / fetchFromSource().
 */
const ALLOWED: Record<string, { calls: string[]; why: string }> = {
  "src/fetch-with-timeout.ts": {
    calls: ["fetch", "new Request"],
    why: "the one per-attempt timeout of every outbound request; it sends what its caller built",
  },
  "src/auth/inbound/jwt.ts": {
    calls: ["fetchWithTimeout"],
    why: "the inbound JWKS: the keys of the issuer of the edge's own clients' JWTs, not a source",
  },
  "src/auth/upstream/token-request.ts": {
    calls: ["fetchWithTimeout", "fetchWithTimeout"],
    why:
      "the token endpoint (an OAuth server, not the FHIR source) and token-URL discovery (<base>/.well-known/smart-configuration, " +
      "<base>/metadata, anonymous): both run inside the TokenCoordinator, which the client asks for credentials, so sending them " +
      "through the client would go round in a circle",
  },
  "src/auth/upstream/token-coordinator.ts": {
    calls: ["fetch", "fetch"],
    why: "hands the runtime's fetch to token-request.ts (above)",
  },
  "src/subscriptions/channel/deliverer.ts": {
    calls: ["fetchWithTimeout"],
    why: "webhook deliveries to a channel's targets (the app's endpoints, not a source); the channel's $status and $events go through src/subscriptions/channel/source-client.ts, which uses the client",
  },
  "src/subscriptions/channel/object.ts": {
    calls: ["fetch"],
    why: "hands the runtime's fetch to the deliverer (above), injectable in tests",
  },
  "src/subscriptions/inbox.ts": {
    calls: ["new Request"],
    why: "the WebSocket upgrade handed to the channel's own Durable Object (stub.fetch on an internal URL), not a request to a source",
  },
  "src/admin/console/refresh-script.ts": {
    calls: ["fetch"],
    why: "code sent to the browser: the console page fetching its own /admin/console/live fragment from the edge, never run in the Worker",
  },
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

/** The outbound calls in a file, comments left out. */
function outboundCalls(text: string): string[] {
  const code = text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .map((line) => line.replace(/\/\/.*$/, ""))
    // Declarations, not calls: `function fetch(`, and methods such as a Durable Object's `override async fetch(request): Promise<Response>`.
    .filter((line) => !/^\s*(export\s+)?(override\s+)?(async\s+)?(function\b|[A-Za-z_$][\w$]*\([^)]*\)\s*:\s*Promise<)/.test(line))
    .join("\n");
  return [...code.matchAll(OUTBOUND)].map((m) => m[1] ?? "new Request");
}

const root = process.cwd();
const found = new Map(
  sourceFiles(join(root, "src"))
    .map((file) => [relative(root, file).split("\\").join("/"), outboundCalls(readFileSync(file, "utf8"))] as const)
    .filter(([, calls]) => calls.length > 0),
);

describe("no folder other than src/upstream/ builds an upstream request", () => {
  it("every outbound call outside src/upstream/ is on the commented allow-list, and every entry still matches", () => {
    const outside = Object.fromEntries([...found].filter(([file]) => !file.startsWith("src/upstream/")).map(([file, calls]) => [file, [...calls].sort()]));
    const allowed = Object.fromEntries(Object.entries(ALLOWED).map(([file, entry]) => [file, [...entry.calls].sort()]));
    expect(outside).toEqual(allowed);
  });

  it("the scan sees the calls it looks for (the client's own, inside src/upstream/)", () => {
    expect(found.get("src/upstream/source-client.ts")).toEqual(expect.arrayContaining(["forward", "credentialsFor", "upstreamRequestHeaders"]));
  });
});
