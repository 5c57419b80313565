import * as fc from "fast-check";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { readEdgeConfig } from "../../../src/config/edge-config.ts";
import type { SourceConfig } from "../../../src/config/types.ts";
import { locateRequest } from "../../../src/proxy/locate.ts";
import { resolveSourcePath, type UnsafePathReason } from "../../../src/upstream/source-path.ts";
import { fuzzParameters, fuzzTimeout } from "../../fixtures/fuzz.ts";

const config = readEdgeConfig({
  PROXY_AUTH: "none",
  ALLOW_INSECURE_HTTP: "true",
  FHIR_SOURCE_DEEP: "fhir://ehr.example:8443/fhir/R4",
  FHIR_SOURCE_SHALLOW: "fhir+http://127.0.0.1:8080/fhir/",
  FHIR_SOURCE_ROOT: "fhir://root.example",
});
const SOURCES = ["deep", "shallow", "root"].map((name) => config.sources.get(name)!);
const REASONS: ReadonlySet<UnsafePathReason> = new Set(["dot-segment", "empty-segment", "encoded-separator", "control-character", "bad-encoding", "backslash", "fragment"]);

/** Pieces of hostile paths: dots in every encoding, separators, authority tricks, controls, unicode look-alikes. */
const ATOMS = [
  ...["Patient", "123", "_history", "$everything", "metadata", "a.b", "x-y", "~"],
  ...[".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2e", "%2e.", "%252e", "%252e%252e", "%25", "%", "%zz", "%2", "%%32%65"],
  ...["%c0%ae", "%e0%80%ae", "%c0%ae%c0%ae", "%c0%af", "%e0%80%af", "%c1%9c", "%f0%80%80%ae", "%252f", "%25c0%25ae"],
  ...["/", "//", "%2f", "%2F", "\\", "%5c", "%5C", "%255c"],
  ...["@", "evil.example", "@evil.example", ":", "http:", "https:", "https://evil.example", "user:pw@", "%40"],
  ...[";", ";jsessionid=1", "..;", "%3b", ";/..", "..%3b"],
  ...["\u0000", "%00", "%0a", "\t", "\n", "\r", " ", "%20", "%7f", "\u007f"],
  ...["\uff0e", "\uff0e\uff0e", "\u2024", "\u2025", "\u3002", "\ufe52", "\uff0f", "\uff3c", "\u2215", "%ef%bc%8e", "%e2%80%a5", "\u0430", "\u00e9"],
  ...["#", "?", "%3f", "%23", "&", "=", "+", "'", '"', "<", ">", "`", "{", "|"],
];
const atom = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...ATOMS) }, { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 4 }) });
// Plain segments between the hostile ones, so that many paths pass and what passes is checked.
const segment = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom("Patient", "123", "_history", "2", "$everything", "Observation", "_search") },
  { weight: 3, arbitrary: fc.array(atom, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("")) },
);
const rest = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom("", "/") },
  { weight: 8, arbitrary: fc.array(segment, { minLength: 1, maxLength: 6 }).map((segments) => "/" + segments.join("/")) },
);
const search = fc.oneof(
  fc.constant(""),
  fc.array(fc.oneof(fc.constantFrom("_count=1", "x=../../..", "next=https://evil.example/", "@evil.example", "#frag", "%2e%2e/", "\\", "&", "="), fc.string({ maxLength: 6 })), { maxLength: 4 }).map((p) => "?" + p.join("")),
);
const source = fc.constantFrom(...SOURCES);

/** Percent-decoding as a lenient upstream does it: overlong UTF-8 read as the ASCII it spells, invalid bytes as Latin-1. */
function lenientDecode(path: string): string {
  const overlong = path
    .replace(/%c0%ae|%e0%80%ae|%f0%80%80%ae/gi, ".")
    .replace(/%c0%af|%e0%80%af/gi, "/")
    .replace(/%c1%9c/gi, "\\");
  return overlong.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
  });
}

/** RFC 3986 remove_dot_segments on a path, `\` counting as `/`. */
function removeDots(path: string): string {
  const out: string[] = [];
  for (const s of path.replaceAll("\\", "/").split("/").slice(1)) {
    if (s === "..") out.pop();
    else if (s !== ".") out.push(s);
  }
  return "/" + out.join("/");
}

/** What an upstream may make of the path it was sent, by the normalisations servers in the wild apply. */
function upstreamViews(pathname: string): Record<string, string> {
  const decoded = lenientDecode(pathname);
  return {
    "as sent": removeDots(pathname),
    "decoded once": removeDots(decoded),
    "decoded twice": removeDots(lenientDecode(decoded)),
    "path parameters stripped (Tomcat, Jetty)": removeDots(lenientDecode(pathname.split("/").map((s) => s.split(";")[0]).join("/"))),
    "decoded, then parameters stripped": removeDots(decoded.split("/").map((s) => s.split(";")[0]).join("/")),
    "decoded and NFKC-normalised (unicode dots and slashes)": removeDots(decoded.normalize("NFKC")),
  };
}

function isUnder(path: string, basePath: string): boolean {
  return basePath === "" || path === basePath || path.startsWith(basePath + "/");
}

function checkTarget(src: SourceConfig, r: string, q: string): void {
  let result: ReturnType<typeof resolveSourcePath>;
  try {
    result = resolveSourcePath(src, r, q);
  } catch (error) {
    throw new Error(`resolveSourcePath threw ${String(error)} for ${JSON.stringify(r + q)}`);
  }
  if (!result.ok) {
    expect(REASONS.has(result.error)).toBe(true);
    return;
  }
  const { url, segments } = result.value;
  expect(url.startsWith(src.baseUrl)).toBe(true);
  // fetch() sends what the URL parser makes of it: the host must be the source's, the path under its base.
  const sent = new URL(url);
  expect(sent.origin).toBe(src.origin);
  for (const [view, path] of Object.entries(upstreamViews(sent.pathname))) {
    expect(isUnder(path, src.basePath), `${view}: ${path} from ${JSON.stringify(r)}`).toBe(true);
  }
  // What the edge authorises (segments) is what the upstream gets.
  const after = decodeURIComponent(sent.pathname).slice(src.basePath.length);
  expect(after.split("/").slice(1).filter((s, i, all) => s !== "" || i < all.length - 1)).toEqual(segments);
}

describe("path safety: no generated path or query leaves the source's host and base path", () => {
  it(
    "resolveSourcePath gives a URL on the source's origin, under its base in every upstream's view, or a typed refusal",
    () => {
      // Callers split at the first `?` (the runtime's URL, an upstream's next link): a raw `?` never reaches the path.
      const split = (r: string, q: string): [string, string] => (r.includes("?") ? [r.slice(0, r.indexOf("?")), r.slice(r.indexOf("?")) + q] : [r, q]);
      fc.assert(fc.property(source, rest, search, (src, r, q) => checkTarget(src, ...split(r, q))), fuzzParameters());
    },
    fuzzTimeout(300),
  );

  it(
    "through the router: a request URL as the runtime parses it, located and joined, stays on the source",
    async () => {
      // The edge's own route shape: locateRequest splits the raw URL around :source, then resolveSourcePath joins.
      const app = new Hono();
      const handler = (c: Parameters<typeof locateRequest>[0]) => {
        const src = SOURCES.find((s) => s.name === c.req.param("source"));
        if (!src) return c.text("not a source", 404);
        const located = locateRequest(c, undefined, src.name);
        checkTarget(src, located.rest, located.search);
        return c.text("checked");
      };
      app.all("/:source", handler);
      app.all("/:source/*", handler);
      app.onError((error) => {
        throw error;
      });
      await fc.assert(
        fc.asyncProperty(source, rest, search, async (src, r, q) => {
          let request: Request;
          try {
            request = new Request(`https://edge.example/${src.name}${r}${q}`);
          } catch {
            return; // the runtime refuses it before the edge sees it
          }
          const response = await app.fetch(request);
          // Anything the router does not take (a path the URL parser moved off the source) never reaches a source.
          if (response.status !== 404) expect(await response.text()).toBe("checked");
        }),
        fuzzParameters(),
      );
    },
    fuzzTimeout(600),
  );
});
