import type { InboundAuthConfig } from "../config/edge-config.ts";
import type { CapabilityStatementRestSecurity } from "../fhir/types.ts";

const SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service";

/**
 * The security a client of the edge meets: the edge's own, never the
 * upstream's token endpoint (the edge holds the upstream credentials).
 * @see https://hl7.org/fhir/smart-app-launch/conformance.html
 */
export function edgeSecurity(inbound: InboundAuthConfig | undefined): CapabilityStatementRestSecurity {
  switch (inbound?.mode) {
    case "jwt":
      return {
        cors: true,
        service: [{ coding: [{ system: SECURITY_SERVICE, code: "SMART-on-FHIR", display: "SMART-on-FHIR" }] }],
        description: `fhir-edge: send Authorization: Bearer <JWT> issued by ${inbound.issuer} for audience ${inbound.audience}; SMART system scopes limit resource types and interactions.`,
      };
    case "none":
      return { cors: true, description: "fhir-edge: no client authentication (local demo mode)." };
    default:
      return {
        cors: true,
        service: [{ text: "API key" }],
        description: "fhir-edge: send an API key as Authorization: Bearer <key> or X-Api-Key: <key>.",
      };
  }
}
