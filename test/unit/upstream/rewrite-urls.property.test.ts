import * as fc from "fast-check";
import { describe, it } from "vitest";
import { createUrlRewriter } from "../../../src/upstream/rewrite-urls.ts";
import { fuzzParameters, fuzzTimeout } from "../../fixtures/fuzz.ts";

/** Upstream bases: under a path, with a port, at the root of a host. */
const SETUPS = [
  { base: "https://ehr.example/fhir/R4", basePath: "/fhir/R4", edge: "https://edge.example/ehr" },
  { base: "http://10.0.0.5:8080/fhir", basePath: "/fhir", edge: "https://fhir.example.org/v1/hapi" },
  { base: "https://root.example", basePath: "", edge: "https://edge.example/root" },
];
const setup = fc.constantFrom(...SETUPS);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Setup = (typeof SETUPS)[number];

/** What may follow the base in an upstream URL. */
const suffix = fc.oneof(
  fc.constantFrom("", "/", "/Patient/1", "/Patient/1/_history/2", "?_getpages=abc&_getpagesoffset=10", "/Patient?name=a b&_count=5", "#x", "/$export-poll-status?_jobId=7"),
  fc.string({ unit: fc.constantFrom(..."aZ09/?#&=%-._~:@\"\\<>' \u00e9"), maxLength: 8 }).map((s) => "/" + s),
);
/** A URL value in a generated body: the base, a look-alike, the base inside something else, or not a URL at all. */
const urlValue = (s: Setup) =>
  fc.oneof(
    { weight: 4, arbitrary: suffix.map((x) => s.base + x) },
    {
      weight: 3,
      arbitrary: fc.oneof(
        fc.constantFrom(`${s.base}X`, `${s.base}-2`, `${s.base}2/Patient`, `${s.base}.old/x`, `${s.base}_x`, `${s.base}:99/x`, `${s.base}%2F`),
        fc.constantFrom(`https://other.example/?u=${s.base}/Patient`, ` ${s.base}/Patient`, `${s.base.toUpperCase()}/Patient`, s.base.replace("://", "://user@"), s.base.slice(0, -1)),
        suffix.map((x) => `see ${s.base}${x} for more`),
      ),
    },
    { weight: 1, arbitrary: fc.constantFrom("Patient/1", "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "", "https://elsewhere.example/fhir/Patient/1", s.edge + "/Patient/1") },
  );

/** A resource that holds URL-like values where none is rewritable (identifier systems, references, text, its own `link`). */
const resource = (s: Setup): fc.Arbitrary<Json> =>
  fc
    .record({
      resourceType: fc.constantFrom("Patient", "Observation", "Parameters", "OperationOutcome"),
      id: fc.constantFrom("1", "a-b", "x.y"),
      identifier: fc.array(fc.record({ system: urlValue(s), value: fc.string({ maxLength: 4 }) }), { maxLength: 2 }),
      subject: fc.record({ reference: urlValue(s) }),
      link: fc.array(fc.record({ url: urlValue(s), other: fc.record({ reference: urlValue(s) }) }), { maxLength: 1 }),
      fullUrl: urlValue(s),
      valueQuantity: fc.record({ value: fc.constantFrom(1.5, 0, -2, 1e21, 3) }),
      active: fc.boolean(),
      note: fc.array(fc.record({ text: urlValue(s) }), { maxLength: 1 }),
    }, { requiredKeys: ["resourceType"] })
    .map((r) => r as Json);

/** Bundles, with Bundles inside entries, and the keys in any order (`resourceType` need not come first). */
const bundle = (s: Setup): fc.Arbitrary<Json> =>
  fc.letrec<{ bundle: Json }>((tie) => ({
    bundle: fc
      .record(
        {
          resourceType: fc.constant("Bundle"),
          type: fc.constantFrom("searchset", "history", "batch-response", "transaction-response", "collection"),
          total: fc.nat(),
          link: fc.array(fc.record({ relation: fc.constantFrom("self", "next", "previous"), url: urlValue(s) }), { maxLength: 3 }),
          entry: fc.array(
            fc.record(
              {
                fullUrl: urlValue(s),
                link: fc.array(fc.record({ relation: fc.constant("alternate"), url: urlValue(s) }), { maxLength: 1 }),
                resource: fc.oneof({ maxDepth: 2 }, { weight: 4, arbitrary: resource(s) }, { weight: 1, arbitrary: tie("bundle") }),
                request: fc.record({ method: fc.constantFrom("GET", "PUT"), url: urlValue(s) }),
                response: fc.record({ status: fc.constantFrom("200 OK", "201"), location: urlValue(s) }, { requiredKeys: ["status"] }),
                search: fc.record({ mode: fc.constantFrom("match", "include", "outcome") }),
              },
              { requiredKeys: [] },
            ),
            { maxLength: 3 },
          ),
        },
        { requiredKeys: ["resourceType"] },
      )
      .chain((b) => fc.shuffledSubarray(Object.keys(b), { minLength: Object.keys(b).length }).map((keys) => Object.fromEntries(keys.map((k) => [k, (b as Record<string, Json>)[k]!])) as Json)),
  })).bundle;

const document = (s: Setup) => fc.oneof({ weight: 5, arbitrary: bundle(s) }, { weight: 1, arbitrary: resource(s) });

function startsWithBase(value: string, base: string): boolean {
  return value === base || (value.startsWith(base) && "/?#".includes(value[base.length]!));
}

/** The contract's rule, on the parsed document: a Bundle's link[].url, entry[].fullUrl and entry[].response.location, at any depth. */
function expected(doc: Json, s: Setup): Json {
  const swap = (v: Json | undefined): Json | undefined => (typeof v === "string" && startsWithBase(v, s.base) ? s.edge + v.slice(s.base.length) : v);
  if (Array.isArray(doc)) return doc.map((d) => expected(d, s));
  if (doc === null || typeof doc !== "object") return doc;
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(doc)) out[k] = expected(v, s);
  if (doc.resourceType === "Bundle") {
    if (Array.isArray(out.link)) out.link = out.link.map((l) => (l && typeof l === "object" && !Array.isArray(l) && "url" in l ? { ...l, url: swap(l.url)! } : l));
    if (Array.isArray(out.entry)) {
      out.entry = out.entry.map((e) => {
        if (!e || typeof e !== "object" || Array.isArray(e)) return e;
        const entry = { ...e };
        if ("fullUrl" in entry) entry.fullUrl = swap(entry.fullUrl)!;
        const r = entry.response;
        if (r && typeof r === "object" && !Array.isArray(r) && "location" in r) entry.response = { ...r, location: swap(r.location)! };
        return entry;
      });
    }
  }
  return out;
}

function check(condition: boolean, what: () => string): void {
  if (!condition) throw new Error(what());
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** JSON as servers write it: compact or indented, `/` escaped as `\/` in some strings or all. */
const jsonStyle = fc.record({ indent: fc.constantFrom(0, 2), escapeSlashes: fc.constantFrom("none", "all", "some") });
function serialise(doc: Json, style: { indent: number; escapeSlashes: string }): string {
  const text = JSON.stringify(doc, null, style.indent);
  // A `/` in JSON text is always inside a string, so escaping it keeps the document.
  if (style.escapeSlashes === "all") return text.replaceAll("/", "\\/");
  if (style.escapeSlashes === "some") {
    let k = 0;
    return text.replace(/\//g, () => (k++ % 3 === 0 ? "\\/" : "/"));
  }
  return text;
}

/** FHIR XML of a generated document: primitives as `value` attributes, resources inside their type's element. */
function toXml(doc: Json, quote: string, name?: string): string {
  const attr = (v: string) => v.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll('"', "&quot;").replaceAll("'", "&apos;");
  if (Array.isArray(doc)) return doc.map((d) => toXml(d, quote, name)).join("");
  if (doc === null) return "";
  if (typeof doc !== "object") return `<${name} value=${quote}${attr(String(doc))}${quote}/>`;
  const { resourceType, ...rest } = doc;
  const children = Object.entries(rest).map(([k, v]) => toXml(v, quote, k)).join("");
  if (typeof resourceType === "string") {
    // A narrative and a comment that mention the base: neither is a URL field.
    const body = `<${resourceType} xmlns="http://hl7.org/fhir"><!-- ${SETUPS[0]!.base}/Patient/1 --><text><div xmlns="http://www.w3.org/1999/xhtml"><a href="${SETUPS.map((s) => s.base).join(" ")}">x</a></div></text>${children}</${resourceType}>`;
    return name ? `<${name}>${body}</${name}>` : body;
  }
  return `<${name}>${children}</${name}>`;
}

describe("URL rewriting: every upstream URL in a rewritable place is rewritten, nothing else changes", () => {
  it(
    "JSON: the parsed output is the document with exactly those URLs rewritten, and the text around them is byte for byte the same",
    () => {
      fc.assert(
        fc.property(
          setup.chain((s) => fc.tuple(fc.constant(s), document(s), jsonStyle)),
          ([s, doc, style]) => {
            const text = serialise(doc, style);
            const out = createUrlRewriter(s.base, s.edge, s.basePath).rewriteText(text);
            const want = expected(doc, s);
            check(same(JSON.parse(out), want), () => `rewritten: ${out}\nexpected: ${JSON.stringify(want)}`);
            if (same(want, doc)) check(out === text, () => `changed a body with nothing to rewrite: ${out}`);
            // Putting the base back gives the input (slashes aside, escaped or not): only the base at the start of those strings changed.
            const plain = (t: string) => t.replaceAll("\\/", "/");
            if (!plain(text).includes(s.edge)) check(plain(out).replaceAll(s.edge, s.base) === plain(text), () => `changed more than the base: ${out}`);
          },
        ),
        fuzzParameters(),
      );
    },
    fuzzTimeout(1000),
  );

  it(
    "XML: the output is the XML of the document with exactly those URLs rewritten",
    () => {
      fc.assert(
        fc.property(
          setup.chain((s) => fc.tuple(fc.constant(s), document(s), fc.constantFrom('"', "'"))),
          ([s, doc, quote]) => {
            const text = toXml(doc, quote);
            const out = createUrlRewriter(s.base, s.edge, s.basePath).rewriteText(text);
            const want = toXml(expected(doc, s), quote);
            check(out === want, () => `rewritten: ${out}\nexpected: ${want}`);
          },
        ),
        fuzzParameters(),
      );
    },
    fuzzTimeout(1000),
  );

  it(
    "Location and Content-Location: the base at the start (absolute, or path-absolute under the base path) and nothing else",
    () => {
      fc.assert(
        fc.property(
          setup.chain((s) => fc.tuple(fc.constant(s), fc.oneof(urlValue(s), suffix.map((x) => s.basePath + x), suffix))),
          ([s, value]) => {
            const out = createUrlRewriter(s.base, s.edge, s.basePath).rewriteHeader(value);
            const pathUnderBase = value.startsWith("/") && !value.startsWith("//") && (s.basePath === "" || startsWithBase(value, s.basePath));
            const want = startsWithBase(value, s.base) ? s.edge + value.slice(s.base.length) : pathUnderBase ? s.edge + value.slice(s.basePath.length) : value;
            check(out === want, () => `${value} became ${out}, expected ${want}`);
          },
        ),
        fuzzParameters(),
      );
    },
    fuzzTimeout(100),
  );
});
