import type { InboundAuthConfig } from "../config/edge-config.ts";
import type { CapabilityStatement, Extension } from "../fhir/types.ts";
import { edgeSecurity } from "./edge-security.ts";
import { VERSION } from "../version.ts";

/** Where the edge's own extensions are defined. */
export const EXTENSION_BASE = "https://github.com/fhir-edge/fhir-edge/StructureDefinition";

export interface EdgeStatementInput {
  /** The edge's root, no trailing slash. */
  edgeRoot: string;
  /** Source names, in order; nothing else about a source is published. */
  sources: readonly string[];
  inbound: InboundAuthConfig | undefined;
  /** The statement's date (FHIR dateTime). */
  date: string;
}

const endpoint = (name: string, url: string, description: string): Extension => ({
  url: `${EXTENSION_BASE}/endpoint`,
  extension: [
    { url: "name", valueString: name },
    { url: "url", valueUrl: url },
    { url: "description", valueString: description },
  ],
});

/**
 * The edge's own R4 CapabilityStatement (pure). The edge is not one FHIR
 * server but a front for several, so `rest` has no resources of its own:
 * each source is an extension giving its name and the edge URL of its FHIR
 * base (its own statement is at `<base>/metadata`), and the edge's endpoints
 * (aggregate, batch, webhooks) are extensions too, explained in
 * `rest.documentation`. Security is the edge's: API key or SMART-on-FHIR.
 * Nothing about an upstream (its URL, its auth) is published.
 * @see https://hl7.org/fhir/R4/capabilitystatement.html
 */
export function edgeCapabilityStatement(input: EdgeStatementInput): CapabilityStatement {
  const root = input.edgeRoot;
  return {
    resourceType: "CapabilityStatement",
    id: "fhir-edge",
    url: `${root}/metadata`,
    version: VERSION,
    name: "FhirEdge",
    title: "fhir-edge",
    status: "active",
    date: input.date,
    kind: "instance",
    software: { name: "fhir-edge", version: VERSION },
    implementation: { description: "fhir-edge: a FHIR proxy and auth broker in front of several FHIR servers (sources)", url: root },
    fhirVersion: "4.0.1",
    format: ["application/fhir+json"],
    rest: [
      {
        mode: "server",
        documentation: [
          "Each source is a FHIR server at `<edge>/<source>` (its own CapabilityStatement at `<edge>/<source>/metadata`).",
          "`GET <edge>/aggregate/<Type>?sources=a,b&<search>` runs one search on several sources and merges the pages into one searchset.",
          "`POST <edge>/aggregate` runs a batch of GET entries, each naming its source (`<source>/<Type>?...`).",
          "`POST <edge>/webhooks/<channel>` receives a source's subscription notifications.",
        ].join("\n\n"),
        security: edgeSecurity(input.inbound),
        extension: [
          ...input.sources.map((name) => ({
            url: `${EXTENSION_BASE}/source`,
            extension: [
              { url: "name", valueString: name },
              { url: "base", valueUrl: `${root}/${name}` },
            ],
          })),
          endpoint("aggregate-search", `${root}/aggregate/{resourceType}`, "GET: one search across sources (sources=a,b), merged into one searchset Bundle, paged by a signed cursor"),
          endpoint("aggregate-batch", `${root}/aggregate`, "POST: a batch Bundle whose GET entries name their source; answered with a batch-response in the same order"),
          endpoint("webhooks", `${root}/webhooks/{channel}`, "POST: subscription notifications from a source (R4 backport, R4B, R5), relayed to the channel's targets"),
        ],
      },
    ],
  };
}
