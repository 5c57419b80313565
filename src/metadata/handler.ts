import type { Context } from "hono";
import { declaredSources } from "../config/lookup.ts";
import type { EdgeHonoEnv } from "../context.ts";
import { NotAcceptableError } from "../errors.ts";
import { edgeRoot } from "../routes.ts";
import { edgeCapabilityStatement } from "./capability-statement.ts";
import { fhirJson } from "../fhir/response.ts";

/**
 * `GET /metadata`: the edge's own CapabilityStatement. Public, as FHIR
 * expects of `metadata` and like `/.well-known/jwks.json`: it names the
 * sources and endpoints, and how to authenticate, never a credential or an
 * upstream URL.
 * @see docs/operations.md#get-metadata
 */
export const edgeMetadataHandler =
  (now: () => number) =>
  async (c: Context<EdgeHonoEnv>): Promise<Response> => {
    c.set("logRoute", "metadata");
    const format = c.req.query("_format");
    if (format !== undefined && /xml/i.test(format)) throw new NotAcceptableError("format-not-supported", "The edge's CapabilityStatement is available as JSON only");
    const config = c.get("config");
    const statement = edgeCapabilityStatement({
      edgeRoot: edgeRoot(c, config.publicUrl, "edgeMetadata"),
      sources: declaredSources(config),
      inbound: config.inbound,
      date: new Date(now()).toISOString(),
    });
    return fhirJson(statement, { headers: { "Cache-Control": "public, max-age=300" } });
  };
