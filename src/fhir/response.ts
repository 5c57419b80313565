import { FHIR_JSON } from "./types.ts";

/** A FHIR JSON answer built by the edge (200 unless told), with any extra headers. */
export function fhirJson(body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): Response {
  return new Response(JSON.stringify(body), { status: init.status ?? 200, headers: { "Content-Type": FHIR_JSON, ...init.headers } });
}
